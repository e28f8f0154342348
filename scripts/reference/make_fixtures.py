"""Writes the small Hugging Face model directories under test/fixtures/hf/ that the tests load:
random-weight RoBERTa and BERT encoders (hidden 32, 2 layers, 4 heads, intermediate 37) in the
formats and with the untidiness of real hub checkpoints, and real tokenizer files (a byte-level
BPE and a WordPiece vocabulary, trained here on a fixed corpus, in the JSON layout of the hub's
tokenizer.json). Everything is deterministic: rerunning gives the same bytes.

    /usr/bin/python3 scripts/reference/make_fixtures.py      # needs python3-torch, python3-regex
"""

import collections
import json
import os
import sys
import unicodedata

import regex as re
import torch

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
from slow_tokenizers import GPT2_PATTERN, BasicTokenizer, bytes_to_unicode  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures", "hf")

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 4, 37

CORPUS = """
Replace me by any text you'd like. The quick brown fox jumps over the lazy dog.
Every node of the swarm fine-tunes the same shared model on its own private data.
The weights move between the machines, but the data never leaves the lab that owns it.
A round starts from the current base, trains for a while, and then the deltas are averaged.
When the round closes, every node holds the same new base, named by its hash.
Language models learn a great deal from plain text: words, phrases, grammar and some facts.
She said that the weather would be better tomorrow, and she was right about it.
They're going to the market on Saturday morning to buy bread, cheese, apples and coffee.
I've never seen such a beautiful sunset over the mountains; the sky was red and gold.
We'll meet at the station at half past nine, unless the train is late again.
The children played in the garden while their parents cooked dinner in the kitchen.
Reading a good book on a rainy afternoon is one of the simple pleasures of life.
The committee approved the new budget after a long discussion about schools and roads.
Scientists measured the temperature of the ocean at many depths during the expedition.
He didn't like the movie at first, but the ending changed his mind completely.
The museum opens at ten o'clock and closes at six, except on public holidays.
Training a neural network takes time, patience, data and a lot of careful testing.
The recipe calls for two cups of flour, one egg, some milk and a pinch of salt.
Our team won the final match by three goals to one in front of a happy crowd.
The old bridge over the river was repaired last year and is open to traffic again.
Please write your name and address clearly at the top of the first page.
The company reported higher profits this quarter thanks to strong sales abroad.
Birds were singing in the trees, and the air smelled of fresh rain and flowers.
It is important to test every change before it is shared with the other members.
The library has thousands of books, maps and old newspapers for anyone to read.
A small café near the harbour serves the best fish soup in the whole town.
Many people prefer to work from home because it saves them a long daily journey.
The doctor told him to drink more water, sleep better and walk every day.
This film is wonderful, moving and funny; the actors are excellent in every scene.
That was the worst meal I have ever had: cold, salty and far too expensive.
What time does the next bus leave for the airport, and how long does it take?
Where did you put the keys? I looked for them everywhere in the house.
How many students passed the exam this year compared with the year before?
Why do leaves change colour in the autumn before they fall from the trees?
The results were surprising, and the researchers repeated the experiment twice.
Numbers such as 3, 14, 2023 and 1000000 appear in text just like words do.
The price rose from 12.50 to 15.75 dollars in less than a month.
""".strip()


# ---------------------------------------------------------------- byte-level BPE (RoBERTa)

def train_byte_level_bpe(texts, vocab_size, specials, mask):
    """Byte-level BPE training as the tokenizers library's BpeTrainer does it: words from the GPT-2
    pattern, mapped to byte symbols, the most frequent adjacent pair merged until the vocabulary
    is full (ties broken by the pair's text, so the result is deterministic)."""
    pat = re.compile(GPT2_PATTERN)
    enc = bytes_to_unicode()
    words = collections.Counter()
    for text in texts:
        for w in re.findall(pat, text):
            words[tuple(enc[b] for b in w.encode("utf-8"))] += 1
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[enc[b]] = len(vocab)
    merges = []
    words = {w: c for w, c in words.items()}
    while len(vocab) < vocab_size - 1:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] < 2:
            break
        (a, b) = best[0]
        merges.append((a, b))
        vocab.setdefault(a + b, len(vocab))
        merged = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        words = merged
    vocab[mask] = len(vocab)
    return vocab, merges


def roberta_tokenizer_files(model_max_length):
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab, merges = train_byte_level_bpe(CORPUS.split("\n"), 512, specials, "<mask>")
    added = [
        {"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": True}
        for s in specials
    ] + [{"id": vocab["<mask>"], "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False, "normalized": False, "special": True}]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", vocab["</s>"]], "cls": ["<s>", vocab["<s>"]], "trim_offsets": True, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
    mask_token = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    config = {
        "add_prefix_space": False,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": True,
        "cls_token": "<s>",
        "eos_token": "</s>",
        "errors": "replace",
        "mask_token": "<mask>",
        "model_max_length": model_max_length,
        "pad_token": "<pad>",
        "sep_token": "</s>",
        "tokenizer_class": "RobertaTokenizer",
        "trim_offsets": True,
        "unk_token": "<unk>",
    }
    special_map = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": mask_token, "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    files = {
        "tokenizer.json": dump(tokenizer, indent=2),
        "vocab.json": dump(vocab),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "tokenizer_config.json": dump(config, indent=2),
        "special_tokens_map.json": dump(special_map, indent=2),
    }
    return files, len(vocab), vocab["<pad>"]


# ---------------------------------------------------------------- WordPiece (BERT, uncased)

def build_wordpiece_vocab(texts, size):
    """A BERT-style uncased vocabulary: the specials, every character of the corpus (whole and as
    a ##continuation), then the most frequent words and ##suffixes until `size` entries."""
    basic = BasicTokenizer(do_lower_case=True)
    words = collections.Counter()
    for text in texts:
        words.update(basic.tokenize(text))
    specials = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({ch for w in words for ch in w} | set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-"))
    vocab = list(specials) + chars + ["##" + c for c in chars]
    suffixes = collections.Counter()
    for w, c in words.items():
        for n in (2, 3, 4):
            if len(w) > n + 1:
                suffixes["##" + w[-n:]] += c
    candidates = [(c, w) for w, c in words.items() if len(w) > 1] + [(c, s) for s, c in suffixes.items() if c >= 3]
    seen = set(vocab)
    for c, tok in sorted(candidates, key=lambda x: (-x[0], x[1])):
        if len(vocab) >= size:
            break
        if tok not in seen:
            vocab.append(tok)
            seen.add(tok)
    return vocab


def bert_tokenizer_files(model_max_length):
    tokens = build_wordpiece_vocab(CORPUS.split("\n"), 400)
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [
        {"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for s in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ]
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
    }
    config = {
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "do_lower_case": True,
        "mask_token": "[MASK]",
        "model_max_length": model_max_length,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]",
    }
    special_map = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    files = {
        "tokenizer.json": dump(tokenizer, indent=2),
        "vocab.txt": "".join(t + "\n" for t in tokens),
        "tokenizer_config.json": dump(config, indent=2),
        "special_tokens_map.json": dump(special_map, indent=2),
    }
    return files, len(vocab), vocab["[PAD]"]


# ---------------------------------------------------------------- weights

def random_body(cfg, gen, pooler=True):
    """Body tensors with RobertaModel/BertModel names. Scales are larger than a fresh init
    (std 0.02) so that attention is peaked and every part of the forward pass shows in the output."""
    H, I = cfg["hidden_size"], cfg["intermediate_size"]

    def normal(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=gen) * std + mean

    t = {
        "embeddings.word_embeddings.weight": normal(cfg["vocab_size"], H, std=0.5),
        "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], H, std=0.5),
        "embeddings.token_type_embeddings.weight": normal(cfg["type_vocab_size"], H, std=0.5),
        "embeddings.LayerNorm.weight": normal(H, std=0.1, mean=1.0),
        "embeddings.LayerNorm.bias": normal(H, std=0.1),
    }

    def linear(prefix, out, inp):
        t[f"{prefix}.weight"] = normal(out, inp, std=1.0 / inp**0.5)
        t[f"{prefix}.bias"] = normal(out, std=0.1)

    def ln(prefix):
        t[f"{prefix}.weight"] = normal(H, std=0.1, mean=1.0)
        t[f"{prefix}.bias"] = normal(H, std=0.1)

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        for n in ("query", "key", "value"):
            linear(f"{p}.attention.self.{n}", H, H)
        linear(f"{p}.attention.output.dense", H, H)
        ln(f"{p}.attention.output.LayerNorm")
        linear(f"{p}.intermediate.dense", I, H)
        linear(f"{p}.output.dense", H, I)
        ln(f"{p}.output.LayerNorm")
    if pooler:
        linear("pooler.dense", H, H)
    return t


def dump(obj, indent=None):
    return json.dumps(obj, indent=indent, ensure_ascii=False) + ("\n" if indent else "")


def write_dir(name, config, tensors, tokenizer_files, dtype):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
        f.write(dump(config, indent=2))
    for fname, text in tokenizer_files.items():
        with open(os.path.join(d, fname), "w", encoding="utf-8") as f:
            f.write(text)
    cast = {n: (v.to(dtype) if v.is_floating_point() else v) for n, v in tensors.items()}
    safetensors_io.save(os.path.join(d, "model.safetensors"), cast, {"format": "pt"})


def main():
    torch.manual_seed(0)
    rob_files, rob_vocab, rob_pad = roberta_tokenizer_files(64)
    bert_files, bert_vocab, bert_pad = bert_tokenizer_files(64)
    roberta_cfg = {
        "architectures": ["RobertaForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 66,
        "model_type": "roberta",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": rob_pad,
        "type_vocab_size": 1,
        "vocab_size": rob_vocab,
    }
    bert_cfg = {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": bert_pad,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": bert_vocab,
    }
    H = HIDDEN

    # 1. roberta-mlm: like roberta-base (RobertaForMaskedLM): `roberta.` prefix, an lm_head, no pooler.
    g = torch.Generator().manual_seed(1)
    body = random_body(roberta_cfg, g, pooler=False)
    t = {f"roberta.{n}": v for n, v in body.items()}
    t.update({
        "lm_head.dense.weight": torch.randn(H, H, generator=g) * 0.2,
        "lm_head.dense.bias": torch.randn(H, generator=g) * 0.1,
        "lm_head.layer_norm.weight": torch.ones(H),
        "lm_head.layer_norm.bias": torch.zeros(H),
        "lm_head.decoder.weight": body["embeddings.word_embeddings.weight"].clone(),
        "lm_head.bias": torch.zeros(rob_vocab),
    })
    write_dir("roberta-mlm", roberta_cfg, t, rob_files, torch.float32)

    # 2. roberta-f16: a RobertaModel saved in float16 by a recent transformers, no prefix, pooler,
    #    GELU with the tanh approximation.
    g = torch.Generator().manual_seed(2)
    cfg = dict(roberta_cfg, architectures=["RobertaModel"], hidden_act="gelu_new", classifier_dropout=None,
               position_embedding_type="absolute", torch_dtype="float16", transformers_version="4.40.0", use_cache=True)
    write_dir("roberta-f16", cfg, random_body(cfg, g), rob_files, torch.float16)

    # 3. bert-pretraining: like bert-base-uncased: `bert.` prefix, `cls.` heads, LayerNorm
    #    gamma/beta, a position_ids buffer (int64).
    g = torch.Generator().manual_seed(3)
    body = random_body(bert_cfg, g)
    t = {}
    for n, v in body.items():
        if ".LayerNorm." in n:
            n = n.replace(".LayerNorm.weight", ".LayerNorm.gamma").replace(".LayerNorm.bias", ".LayerNorm.beta")
        t[f"bert.{n}"] = v
    t["bert.embeddings.position_ids"] = torch.arange(bert_cfg["max_position_embeddings"]).unsqueeze(0)
    t.update({
        "cls.predictions.bias": torch.zeros(bert_vocab),
        "cls.predictions.transform.dense.weight": torch.randn(H, H, generator=g) * 0.2,
        "cls.predictions.transform.dense.bias": torch.zeros(H),
        "cls.predictions.transform.LayerNorm.gamma": torch.ones(H),
        "cls.predictions.transform.LayerNorm.beta": torch.zeros(H),
        "cls.seq_relationship.weight": torch.randn(2, H, generator=g) * 0.2,
        "cls.seq_relationship.bias": torch.zeros(2),
    })
    write_dir("bert-pretraining", bert_cfg, t, bert_files, torch.float32)

    # 4. bert-bf16: a BertModel saved in bfloat16, no prefix.
    g = torch.Generator().manual_seed(4)
    cfg = dict(bert_cfg, architectures=["BertModel"], torch_dtype="bfloat16", transformers_version="4.40.0")
    write_dir("bert-bf16", cfg, random_body(cfg, g), bert_files, torch.bfloat16)
    print(f"wrote {OUT}: roberta vocab {rob_vocab}, bert vocab {bert_vocab}")


if __name__ == "__main__":
    main()
