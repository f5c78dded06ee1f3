// The official openai client against mla-coordinator's HTTP API: completions and chat, streamed
// and not, sampling with a seed, stop strings, usage, and the errors the client raises.
// Environment: MLA_HTTP_BASE (http://host:port), MLA_MODEL (the served model's name).
// Prints one line per check; exits 1 if any fails.
import OpenAI from 'openai';

const model = process.env.MLA_MODEL;
const client = new OpenAI({
  baseURL: `${process.env.MLA_HTTP_BASE}/v1`,
  apiKey: 'unused',
  maxRetries: 0,
  timeout: 120000,
});

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function streamText(stream, kind) {
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += kind === 'chat' ? (choice.delta.content ?? '') : choice.text;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, usage, chunks };
}

async function expectError(promise, errorClass, status, param) {
  try {
    await promise;
  } catch (error) {
    check(error instanceof errorClass, `expected ${errorClass.name}, got ${error.constructor.name}: ${error.message}`);
    check(error.status === status, `status ${error.status}, expected ${status}`);
    if (param !== undefined) check(error.param === param, `param ${error.param}, expected ${param}`);
    return error;
  }
  throw new Error(`expected ${errorClass.name}, the call succeeded`);
}

const base = { model, temperature: 0, ignore_eos: true };
const checks = {
  async models() {
    const list = await client.models.list();
    check(list.data.length === 1 && list.data[0].id === model, JSON.stringify(list.data));
    const one = await client.models.retrieve(model);
    check(one.id === model, JSON.stringify(one));
  },
  async completion() {
    const c = await client.completions.create({ ...base, prompt: 'The quick brown fox', max_tokens: 12 });
    check(c.object === 'text_completion', c.object);
    check(c.choices.length === 1 && c.choices[0].finish_reason === 'length', JSON.stringify(c.choices));
    check(c.usage.completion_tokens === 12, JSON.stringify(c.usage));
    check(c.usage.prompt_tokens > 1 && c.usage.total_tokens === c.usage.prompt_tokens + 12, JSON.stringify(c.usage));
    const s = await streamText(await client.completions.create({
      ...base, prompt: 'The quick brown fox', max_tokens: 12, stream: true,
      stream_options: { include_usage: true },
    }), 'completion');
    check(s.text === c.choices[0].text, `streamed ${JSON.stringify(s.text)} != ${JSON.stringify(c.choices[0].text)}`);
    check(s.finish === 'length', s.finish);
    check(s.usage && s.usage.completion_tokens === 12, JSON.stringify(s.usage));
    console.log(`  completion: ${JSON.stringify(c.choices[0].text)} (${s.chunks} chunks streamed)`);
  },
  async chat() {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }];
    const c = await client.chat.completions.create({ ...base, messages, max_tokens: 10 });
    check(c.object === 'chat.completion', c.object);
    check(c.choices[0].message.role === 'assistant', JSON.stringify(c.choices[0]));
    check(c.choices[0].finish_reason === 'length', c.choices[0].finish_reason);
    check(c.usage.completion_tokens === 10, JSON.stringify(c.usage));
    const s = await streamText(await client.chat.completions.create({ ...base, messages, max_tokens: 10, stream: true }), 'chat');
    check(s.text === c.choices[0].message.content, `streamed ${JSON.stringify(s.text)} != ${JSON.stringify(c.choices[0].message.content)}`);
    check(s.finish === 'length', s.finish);
    console.log(`  chat: ${JSON.stringify(c.choices[0].message.content)}`);
  },
  async seeded_sampling() {
    const request = { ...base, prompt: 'Once upon a time', max_tokens: 10, temperature: 0.9, top_p: 0.95, seed: 1234 };
    const a = await client.completions.create(request);
    const b = await client.completions.create(request);
    check(a.choices[0].text === b.choices[0].text, `${JSON.stringify(a.choices[0].text)} != ${JSON.stringify(b.choices[0].text)}`);
  },
  async stop_string() {
    const full = await client.completions.create({ ...base, prompt: 'Hello there', max_tokens: 24 });
    const text = full.choices[0].text;
    check(text.length >= 6, `text too short for a stop check: ${JSON.stringify(text)}`);
    const stop = text.slice(4, 6);
    const expected = text.slice(0, text.indexOf(stop));
    for (const stream of [false, true]) {
      const request = { ...base, prompt: 'Hello there', max_tokens: 24, stop: [stop], stream };
      let got, finish;
      if (stream) {
        ({ text: got, finish } = await streamText(await client.completions.create(request), 'completion'));
      } else {
        const c = await client.completions.create(request);
        got = c.choices[0].text;
        finish = c.choices[0].finish_reason;
        check(c.usage.completion_tokens < 24, JSON.stringify(c.usage));
      }
      check(got === expected, `stop ${JSON.stringify(stop)} stream=${stream}: ${JSON.stringify(got)} != ${JSON.stringify(expected)}`);
      check(finish === 'stop', finish);
    }
  },
  async errors() {
    await expectError(client.completions.create({ ...base, prompt: 'x', max_tokens: -1 }), OpenAI.BadRequestError, 400, 'max_tokens');
    await expectError(client.chat.completions.create({ ...base, messages: [{ role: 'user', content: 'x' }], temperature: 3 }), OpenAI.BadRequestError, 400, 'temperature');
    await expectError(client.completions.create({ ...base, prompt: 'x', max_tokens: 4, n: 2 }), OpenAI.BadRequestError, 400, 'n');
    await expectError(client.completions.create({ ...base, prompt: 'x', max_tokens: 100000 }), OpenAI.BadRequestError, 400, 'max_tokens');
    const e = await expectError(client.completions.create({ ...base, model: 'no-such-model', prompt: 'x' }), OpenAI.NotFoundError, 404, 'model');
    check(e.code === 'model_not_found', e.code);
    await expectError(client.chat.completions.create({ ...base, messages: [{ role: 'robot', content: 'x' }] }), OpenAI.BadRequestError, 400);
  },
};

let failures = 0;
for (const [name, run] of Object.entries(checks)) {
  try {
    await run();
    console.log(`PASS ${name}`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}: ${error.stack}`);
  }
}
process.exit(failures ? 1 : 0);
