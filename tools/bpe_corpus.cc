// The built-in multilingual training text (see bpe_corpus.h). Written for this project.
#include "tools/bpe_corpus.h"

namespace mla::tools {
namespace {

constexpr std::string_view kEnglish = R"(The serving cluster woke up before the sun did. Each worker
loaded its slice of the model, measured the memory that was left, and told the coordinator how
many cache blocks it could hold. The coordinator wrote the numbers down, picked the smallest one,
and opened the doors. The first request asked for a poem about the sea; the second wanted the
capital of Australia; the third simply said "hello" and waited.

A good scheduler is patient but never idle. It batches the short prompts together, lets the long
ones arrive in chunks, and keeps every GPU busy without letting any request starve. When memory
runs low it pauses the youngest sequence, frees its blocks, and promises to recompute them later.
Nothing is lost: the tokens that were already generated are kept, and the story continues exactly
where it stopped.

Tokenizers are the quiet translators of this world. They read text as bytes, glue frequent pairs
together, and hand the model a list of numbers. Reading the numbers back is harder than it looks:
a single Chinese character or emoji may be split across two or three tokens, so a streaming
server must hold back the unfinished bytes until the character is complete.

Questions people often ask: What time is it in Tokyo? How do I bake bread without yeast? Why is
the sky blue, and why are sunsets red? Can you summarize this article in three sentences? Please
translate "good morning" into German, French and Japanese. Isn't it strange that we're talking to
a matrix? I'd say it's wonderful, and they'll agree, won't they?
)";

constexpr std::string_view kGerman = R"(Der Zug nach München fährt um 7:45 Uhr von Gleis 12 ab.
Bitte beachten Sie, dass die Türen automatisch schließen. Gestern habe ich im Park einen alten
Freund getroffen; wir haben über Bücher, Musik und das Wetter gesprochen. Die Straße vor unserem
Haus wird nächste Woche erneuert, deshalb müssen wir das Auto in der Garage lassen. Könnten Sie mir
bitte erklären, wie dieses Gerät funktioniert? Ich möchte eine Tasse Kaffee und ein Stück Kuchen.
Übung macht den Meister, sagt meine Großmutter immer, und sie hat meistens recht.
)";

constexpr std::string_view kFrench = R"(Le marché du samedi ouvre très tôt : on y trouve des fruits,
des légumes, du fromage et du pain encore chaud. Où se trouve la gare, s'il vous plaît ? Nous
avons passé l'été à la campagne, près d'une rivière où les enfants apprenaient à nager. Ça
m'étonnerait qu'il pleuve demain, mais je prendrai quand même mon parapluie. Les élèves ont écrit
une lettre à leur professeur pour la remercier de sa patience. Qu'est-ce que vous voulez manger
ce soir ? Une crêpe au chocolat, évidemment !
)";

constexpr std::string_view kChinese = R"(今天天气很好，我们一起去公园散步吧。春天来了，花都开了，
小鸟在树上唱歌。我喜欢读书，也喜欢听音乐和画画。这家饭馆的饺子非常好吃，价格也不贵。请问去火车站
怎么走？一直往前走，到第二个路口向左拐就到了。学习语言需要耐心，每天练习一点，慢慢就会进步。
服务器正在处理你的请求，请稍等片刻。模型把文字切成词元，再把词元变成数字。中文、日文和英文混在一起
的时候，分词器需要特别小心。我们明天早上八点在图书馆门口见面。
)";

constexpr std::string_view kJapanese = R"(おはようございます。今日はとても良い天気ですね。
駅までの道を教えていただけますか。まっすぐ行って、二つ目の角を右に曲がってください。
私は毎朝コーヒーを飲みながら新聞を読みます。週末は友達と一緒に山へハイキングに行きました。
このレストランのラーメンはとても美味しいです。カタカナとひらがなと漢字を全部使うのは難しいけれど、
少しずつ慣れてきました。ありがとうございました。またお会いしましょう。
)";

constexpr std::string_view kRussian = R"(Доброе утро! Сегодня мы поедем на поезде в Москву, а
оттуда на автобусе в маленький город у реки. Я люблю читать книги по вечерам, когда в доме тихо.
Скажите, пожалуйста, где находится ближайшая аптека? Мой брат работает программистом и пишет
код на языке C++. Зимой здесь очень холодно, но летом бывает жарко и солнечно. Спасибо за помощь,
до свидания и хорошего дня!
)";

constexpr std::string_view kSymbols = R"(Emoji: 😀 😂 🎉 🚀 ❤️ 👍 🌍 🍕 🐍 🤖 ✨ 🔥 — done ✅, failed ❌.
Families and flags: 👨‍👩‍👧 🇩🇪 🇫🇷 🇯🇵 🏳️‍🌈. Math: α + β = γ, ∑ x² ≤ ∞, π ≈ 3.14159, 2³ = 8, ½ + ¼ = ¾.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 2048 65536 1234567 3.5% $19.99 €7,50 ¥1200 #1.
Dates and times: 2024-05-17 09:30:00, 31/12/1999, 12.03.2025, version 1.2.3, tel. +1-555-0100.
Whitespace:    four spaces,		two tabs, trailing spaces   
and a blank line follows

Quotes «like this», „so“, “curly”, 'single', and (brackets) [square] {curly} <angle>.
)";

constexpr std::string_view kCode = R"(// A tiny C++ function.
#include <vector>
int Sum(const std::vector<int>& values) {
  int total = 0;
  for (int v : values) total += v;
  return total;  // e.g. Sum({1, 2, 3}) == 6
}

def greet(name: str) -> str:
    """Return a friendly greeting."""
    if not name:
        raise ValueError("name must not be empty")
    return f"Hello, {name}!"

for i in range(10):
    print(i, i ** 2, greet("world"))

{"model": "deepseek-v3", "max_tokens": 128, "temperature": 0.7, "stream": true}
SELECT id, name FROM users WHERE age >= 18 ORDER BY name LIMIT 20;
git commit -m "Fix the off-by-one error in the block table"; make -j8 && ./run_tests --verbose
)";

constexpr std::string_view kParts[] = {kEnglish, kGerman,   kFrench, kChinese,
                                       kJapanese, kRussian, kSymbols, kCode};

constexpr size_t TotalSize() {
  size_t n = 0;
  for (std::string_view part : kParts) n += part.size() + 1;
  return n;
}

struct Corpus {
  char text[TotalSize()];
};

constexpr Corpus Concatenate() {
  Corpus corpus{};
  size_t at = 0;
  for (std::string_view part : kParts) {
    for (char c : part) corpus.text[at++] = c;
    corpus.text[at++] = '\n';
  }
  return corpus;
}

constexpr Corpus kCorpus = Concatenate();

}  // namespace

std::string_view BuiltinBpeCorpus() { return {kCorpus.text, sizeof(kCorpus.text)}; }

}  // namespace mla::tools
