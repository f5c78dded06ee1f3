// A Node gRPC client (@grpc/grpc-js, the proto loaded at run time from protos/) streams a text
// generation from mla-coordinator, reads the model info and gets INVALID_ARGUMENT for an empty
// prompt. Environment: MLA_GRPC_ADDRESS (host:port), MLA_SOURCE_DIR. The last line of stdout
// is a JSON object {text, token_ids, finish_reason, usage} for the Python side to compare.
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const definition = protoLoader.loadSync(
  path.join(process.env.MLA_SOURCE_DIR, 'protos', 'mla', 'v1', 'inference.proto'),
  { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const mla = grpc.loadPackageDefinition(definition).mla.v1;
const client = new mla.Inference(process.env.MLA_GRPC_ADDRESS, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + 60000);

function generate(request) {
  return new Promise((resolve, reject) => {
    const result = { text: '', token_ids: [], chunks: 0, finish_reason: null, usage: null };
    const call = client.Generate(request, { deadline: deadline() });
    call.on('data', (chunk) => {
      result.chunks += 1;
      result.text += chunk.text;
      result.token_ids.push(...chunk.token_ids);
      if (chunk.finish_reason) {
        result.finish_reason = chunk.finish_reason;
        result.usage = chunk.usage;
      }
    });
    call.on('error', reject);
    call.on('end', () => resolve(result));
  });
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const info = await new Promise((resolve, reject) =>
  client.GetModelInfo({}, { deadline: deadline() }, (error, response) => (error ? reject(error) : resolve(response))));
console.log(`model ${info.name}, vocab ${info.vocab_size}`);

const result = await generate({
  prompt_text: 'The capital of France is', max_tokens: 16, ignore_eos: true,
  sampling: { temperature: 0 }, request_id: 'node-1',
});
check(result.token_ids.length === 16, `got ${result.token_ids.length} tokens`);
check(result.finish_reason === 'FINISH_REASON_LENGTH', result.finish_reason);
check(result.usage.completion_tokens === 16, JSON.stringify(result.usage));
check(result.text.length > 0, 'no text');

let code = null;
try {
  await generate({ prompt_token_ids: { ids: [] }, max_tokens: 4 });
} catch (error) {
  code = error.code;
  console.log(`empty prompt: ${error.code} ${error.details}`);
}
check(code === grpc.status.INVALID_ARGUMENT, `code ${code}`);
client.close();
console.log(JSON.stringify(result));
