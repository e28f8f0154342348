"""Reference outputs for the Hugging Face fixtures, computed in PyTorch.

transformers cannot be installed on the machines this project is built on (no PyPI), so this file
carries a faithful transcription of what `RobertaModel.from_pretrained(DIR)` / `BertModel` do in
transformers' modeling_roberta.py / modeling_bert.py / modeling_utils.py for an encoder-only
model in eval mode: the key handling of from_pretrained (base_model_prefix, gamma/beta), the
embeddings (RoBERTa positions counted from padding_idx + 1, BERT positions 0..T-1, token type 0),
the extended attention mask (1 - mask) * finfo(float32).min, ACT2FN, LayerNorm with the config's
eps, and the pooler (tanh(dense(h[:, 0]))). Tokenization uses the slow tokenizers (side files).

    /usr/bin/python3 scripts/reference/hf_reference.py                  # rewrite the goldens
    /usr/bin/python3 scripts/reference/hf_reference.py --check-export OUT [--golden FILE]
        load an exported directory as RobertaModel/BertModel.from_pretrained would, fail on any
        missing or unexpected key, and print the max abs difference to a golden's features
"""

import argparse
import json
import math
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
from slow_tokenizers import BertTokenizer, RobertaTokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "test", "fixtures", "hf")
MODELS = ["roberta-mlm", "roberta-f16", "bert-pretraining", "bert-bf16"]

# The texts of the goldens: one sentence alone, a padded batch (with one row truncated), and a
# set of tokenizer-only cases (accents, emoji, CJK, numbers, odd whitespace, contractions).
SINGLE = "Replace me by any text you'd like."
BATCH = [
    "Replace me by any text you'd like.",
    "Hello world!",
    "The results were surprising, and the researchers repeated the experiment twice with new data from every lab in the swarm.",
    "Café naïve résumé: déjà vu? 3.14 🙂",
]
BATCH_MAX_LENGTH = 20
TOKENIZER_CASES = [
    "Replace me by any text you'd like.",
    "",
    " leading space and trailing space ",
    "multiple   spaces\tand\ttabs\nand new lines\n\n",
    "They're sure we'll win, aren't they? I've heard she'd go.",
    "Numbers: 2023, 1000000, 12.50 and -7.",
    "ÉCOLE élève Ñandú façade",
    "emoji 🙂🚀 and symbols © ® ™ € £",
    "中文 text 数据 mixed",
    "UPPER lower MiXeD CaSe",
    "punctuation!!! ... ??? (brackets) [square] {curly} \"quotes\"",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
]


# ------------------------------------------------------------------- modeling (transcription)

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT2FN = {
    "gelu": nn.functional.gelu,
    "gelu_python": lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))),
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "relu": nn.functional.relu,
}


def create_position_ids_from_input_ids(input_ids, padding_idx, past_key_values_length=0):
    mask = input_ids.ne(padding_idx).int()
    incremental_indices = (torch.cumsum(mask, dim=1).type_as(mask) + past_key_values_length) * mask
    return incremental_indices.long() + padding_idx


class Embeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.model_type = config["model_type"]
        self.word_embeddings = nn.Embedding(config["vocab_size"], config["hidden_size"], padding_idx=config["pad_token_id"])
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], config["hidden_size"])
        self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], config["hidden_size"])
        self.LayerNorm = nn.LayerNorm(config["hidden_size"], eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.register_buffer("position_ids", torch.arange(config["max_position_embeddings"]).expand((1, -1)), persistent=False)
        self.padding_idx = config["pad_token_id"]

    def forward(self, input_ids):
        seq_length = input_ids.shape[1]
        if self.model_type == "roberta":
            position_ids = create_position_ids_from_input_ids(input_ids, self.padding_idx)
        else:
            position_ids = self.position_ids[:, :seq_length]
        token_type_ids = torch.zeros(input_ids.shape, dtype=torch.long)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)


class SelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_attention_heads = config["num_attention_heads"]
        self.attention_head_size = config["hidden_size"] // config["num_attention_heads"]
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config["hidden_size"], self.all_head_size)
        self.key = nn.Linear(config["hidden_size"], self.all_head_size)
        self.value = nn.Linear(config["hidden_size"], self.all_head_size)
        self.dropout = nn.Dropout(config["attention_probs_dropout_prob"])

    def transpose_for_scores(self, x):
        x = x.view(x.size()[:-1] + (self.num_attention_heads, self.attention_head_size))
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        attention_scores = attention_scores + attention_mask
        attention_probs = self.dropout(nn.functional.softmax(attention_scores, dim=-1))
        context_layer = torch.matmul(attention_probs, value_layer).permute(0, 2, 1, 3).contiguous()
        return context_layer.view(context_layer.size()[:-2] + (self.all_head_size,))


class SelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config["hidden_size"], config["hidden_size"])
        self.LayerNorm = nn.LayerNorm(config["hidden_size"], eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = SelfAttention(config)
        self.output = SelfOutput(config)

    def forward(self, hidden_states, attention_mask):
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class Intermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config["hidden_size"], config["intermediate_size"])
        self.intermediate_act_fn = ACT2FN[config["hidden_act"]]

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class Output(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config["intermediate_size"], config["hidden_size"])
        self.LayerNorm = nn.LayerNorm(config["hidden_size"], eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class Layer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = Output(config)

    def forward(self, hidden_states, attention_mask):
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([Layer(config) for _ in range(config["num_hidden_layers"])])

    def forward(self, hidden_states, attention_mask):
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class Pooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config["hidden_size"], config["hidden_size"])
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class Model(nn.Module):
    """RobertaModel / BertModel (add_pooling_layer=True), eval mode, no cache, no cross-attention."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)

    def forward(self, input_ids, attention_mask):
        dtype = torch.float32
        extended = attention_mask[:, None, None, :].to(dtype=dtype)
        extended = (1.0 - extended) * torch.finfo(dtype).min
        sequence_output = self.encoder(self.embeddings(input_ids), extended)
        return sequence_output, self.pooler(sequence_output)


BASE_MODEL_PREFIX = {"roberta": "roberta", "bert": "bert"}


def from_pretrained(directory):
    """What PreTrainedModel.from_pretrained does with the keys of model.safetensors for a base
    model: strip base_model_prefix when the checkpoint has it, rename gamma/beta, cast to float32,
    and report missing and unexpected keys. Returns (model, missing, unexpected)."""
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    defaults = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    config = {**defaults, **config}
    state, metadata = safetensors_io.load(os.path.join(directory, "model.safetensors"))
    if metadata is None or metadata.get("format") not in ("pt", "tf", "flax", "mlx"):
        raise SystemExit(f"{directory}/model.safetensors: metadata {metadata} lacks format=pt (transformers refuses it)")
    model = Model(config).eval()
    prefix = BASE_MODEL_PREFIX[config["model_type"]]
    expected = list(model.state_dict().keys())
    loaded = {}
    for key, value in state.items():
        if "gamma" in key:
            key = key.replace("gamma", "weight")
        if "beta" in key:
            key = key.replace("beta", "bias")
        loaded[key] = value
    if any(k.startswith(prefix) for k in loaded) and not any(k.startswith(prefix) for k in expected):
        loaded = {(k[len(prefix) + 1 :] if k.startswith(prefix + ".") else k): v for k, v in loaded.items()}
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    usable = {k: v.to(torch.float32) for k, v in loaded.items() if k in expected}
    model.load_state_dict(usable, strict=False)
    return model, config, missing, unexpected


def tokenizer_for(directory, config):
    if config["model_type"] == "roberta":
        return RobertaTokenizer(os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"))
    return BertTokenizer(os.path.join(directory, "vocab.txt"))


def features(model, ids_rows, pad_id):
    T = max(len(r) for r in ids_rows)
    input_ids = torch.tensor([r + [pad_id] * (T - len(r)) for r in ids_rows], dtype=torch.long)
    attention_mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in ids_rows], dtype=torch.long)
    with torch.no_grad():
        hidden, pooled = model(input_ids, attention_mask)
    return input_ids, attention_mask, hidden, pooled


def rounded(t):
    return [float(f"{v:.7g}") for v in t] if t.dim() == 1 else [rounded(x) for x in t]


def golden(name):
    directory = os.path.join(FIXTURES, name)
    model, config, missing, unexpected = from_pretrained(directory)
    has_pooler = not any(k.startswith("pooler.") for k in missing)
    if [k for k in missing if not k.startswith("pooler.")]:
        raise SystemExit(f"{name}: missing keys {missing}")
    tok = tokenizer_for(directory, config)
    pad = tok.pad_id
    max_len = config["max_position_embeddings"] - (pad + 1 if config["model_type"] == "roberta" else 0)
    single_ids = tok.encode(SINGLE, max_len)
    ids, _, hidden, pooled = features(model, [single_ids], pad)
    batch_rows = [tok.encode(t, BATCH_MAX_LENGTH) for t in BATCH]
    b_ids, b_mask, b_hidden, b_pooled = features(model, batch_rows, pad)
    return {
        "model": name,
        "reference": "scripts/reference/hf_reference.py: transcription of transformers' "
        + ("RobertaModel" if config["model_type"] == "roberta" else "BertModel")
        + " forward and slow tokenizer, PyTorch " + torch.__version__ + ", float32",
        "ignored_keys": unexpected,
        "missing_keys": missing,
        "single": {
            "text": SINGLE,
            "input_ids": single_ids,
            "last_hidden_state": rounded(hidden[0]),
            "pooler_output": rounded(pooled[0]) if has_pooler else None,
        },
        "batch": {
            "texts": BATCH,
            "max_length": BATCH_MAX_LENGTH,
            "input_ids": b_ids.tolist(),
            "attention_mask": b_mask.tolist(),
            "last_hidden_state": rounded(b_hidden),
            "pooler_output": rounded(b_pooled) if has_pooler else None,
        },
        "tokenizer": [{"text": t, "input_ids": tok.encode(t, 64)} for t in TOKENIZER_CASES],
    }


def check_export(out, golden_file):
    model, config, missing, unexpected = from_pretrained(out)
    print(json.dumps({"architectures": config.get("architectures"), "missing_keys": missing, "unexpected_keys": unexpected}))
    if missing or unexpected:
        raise SystemExit(1)
    if golden_file:
        with open(golden_file, encoding="utf-8") as f:
            g = json.load(f)
        _, _, hidden, pooled = features(model, [g["single"]["input_ids"]], 0)
        diff = (hidden[0] - torch.tensor(g["single"]["last_hidden_state"])).abs().max().item()
        print(json.dumps({"max_abs_diff_last_hidden_state": diff}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-export")
    ap.add_argument("--golden")
    a = ap.parse_args()
    if a.check_export:
        check_export(a.check_export, a.golden)
        return
    torch.set_num_threads(1)
    for name in MODELS:
        g = golden(name)
        path = os.path.join(FIXTURES, f"{name}.golden.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(g, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: ignored {len(g['ignored_keys'])} keys, missing {g['missing_keys']}")


if __name__ == "__main__":
    main()
