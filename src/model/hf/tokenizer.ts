import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers'
import type { ModelConfig } from '../config.js'
import type { EncodeOptions, EncodedBatch, Tokenizer } from '../tokenizer.js'
import { UserError } from '../../util/errors.js'

/**
 * A Hugging Face fast tokenizer (tokenizer.json: byte-level BPE for RoBERTa, WordPiece for BERT)
 * behind our Tokenizer interface. @huggingface/tokenizers normalizes, pre-tokenizes, runs the
 * model and adds the special tokens of the post-processor; truncation and padding are done here
 * as transformers does with `truncation=True, padding=True`: the text is cut to leave room for
 * the special tokens, rows are right-padded with the pad token and masked.
 */

/** The tokens the post-processor wraps a single sequence in (e.g. <s> ... </s>, [CLS] ... [SEP]). */
interface PostProcessor {
  (tokens: string[], pair: string[] | null, addSpecial: boolean): { tokens: string[] }
}

export interface HfTokenizerSources {
  /** Parsed tokenizer.json. */
  tokenizer: unknown
  /** Parsed tokenizer_config.json, if present. */
  tokenizerConfig?: unknown
  /** Parsed special_tokens_map.json, if present. */
  specialTokensMap?: unknown
  /** Where the files came from, for messages. */
  where: string
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number
  readonly padId: number
  /** Special tokens added around one sequence. */
  readonly specialCount: number
  private readonly tok: HfLibTokenizer
  private readonly unkId: number | undefined

  constructor(src: HfTokenizerSources, config?: ModelConfig) {
    const file = `${src.where}/tokenizer.json`
    const json = src.tokenizer as Record<string, unknown>
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${file}: not a JSON object`)
    const model = json.model as Record<string, unknown> | undefined
    if (!model || typeof model !== 'object' || !model.vocab) throw new UserError(`${file}: has no "model" with a "vocab"; it is not a Hugging Face tokenizer.json`)
    if (!Array.isArray(json.added_tokens)) json.added_tokens = []
    const tokConfig = isObject(src.tokenizerConfig) ? src.tokenizerConfig : {}
    try {
      this.tok = new HfLibTokenizer(json, tokConfig)
    } catch (err) {
      throw new UserError(`${file}: cannot build the tokenizer (${(err as Error).message}); the file is malformed or uses a component @huggingface/tokenizers does not support`)
    }
    const vocab = this.tok.get_vocab(true)
    let maxId = -1
    for (const id of vocab.values()) if (id > maxId) maxId = id
    this.vocabSize = maxId + 1
    const unk = typeof model.unk_token === 'string' ? model.unk_token : undefined
    this.unkId = unk === undefined ? undefined : this.tok.token_to_id(unk)
    const post = this.tok.post_processor as unknown as PostProcessor | null
    this.specialCount = post ? post([], null, true).tokens.length : 0
    this.padId = this.resolvePad(src, file, config)
    if (config && this.vocabSize > config.vocab_size) {
      throw new UserError(`${file} has token ids up to ${this.vocabSize - 1}, but config.json has vocab_size ${config.vocab_size}: the tokenizer does not belong to this model`)
    }
  }

  /** Ids of one text with its special tokens, truncated to maxLen in all. */
  encode(text: string, maxLen: number): number[] {
    if (!Number.isInteger(maxLen) || maxLen < this.specialCount + 1) {
      throw new Error(`maxLen must be an integer >= ${this.specialCount + 1} (room for the special tokens), got ${maxLen}`)
    }
    const tokens = this.tok.tokenize(text, { add_special_tokens: false }).slice(0, maxLen - this.specialCount)
    const post = this.tok.post_processor as unknown as PostProcessor | null
    const all = post ? post(tokens, null, true).tokens : tokens
    return all.map((t: string) => {
      const id = this.tok.token_to_id(t) ?? this.unkId
      if (id === undefined) throw new Error(`token ${JSON.stringify(t)} is not in the vocabulary and the tokenizer has no unknown token`)
      return id
    })
  }

  encodeBatch(texts: string[], maxLen: number, opts: EncodeOptions = {}): EncodedBatch {
    const rows = texts.map((t) => this.encode(t, maxLen))
    const seqLen = opts.padToMaxLen ? maxLen : Math.max(1, ...rows.map((r) => r.length))
    const batch = rows.length
    const inputIds = new Int32Array(batch * seqLen).fill(this.padId)
    const attentionMask = new Int32Array(batch * seqLen)
    for (let b = 0; b < batch; b++) {
      inputIds.set(rows[b], b * seqLen)
      attentionMask.fill(1, b * seqLen, b * seqLen + rows[b].length)
    }
    return { inputIds, attentionMask, batch, seqLen }
  }

  /** Tokens of the ids (for display). */
  tokens(ids: number[]): string[] {
    return ids.map((id) => this.tok.id_to_token(id) ?? `<${id}>`)
  }

  /**
   * The pad id: tokenizer.json's padding settings, else the pad token of tokenizer_config.json or
   * special_tokens_map.json, else config.json's pad_token_id. RoBERTa derives position ids from
   * the pad id, so it must agree with config.json.
   */
  private resolvePad(src: HfTokenizerSources, file: string, config?: ModelConfig): number {
    const json = src.tokenizer as { padding?: { pad_id?: unknown } | null }
    let id: number | undefined
    let from = ''
    if (json.padding && typeof json.padding.pad_id === 'number') {
      id = json.padding.pad_id
      from = `${file} (padding.pad_id)`
    }
    for (const [obj, name] of [
      [src.tokenizerConfig, 'tokenizer_config.json'],
      [src.specialTokensMap, 'special_tokens_map.json'],
    ] as const) {
      if (id !== undefined || !isObject(obj)) continue
      const t = (obj as Record<string, unknown>).pad_token
      const content = typeof t === 'string' ? t : isObject(t) && typeof t.content === 'string' ? t.content : undefined
      if (content === undefined) continue
      id = this.tok.token_to_id(content)
      if (id === undefined) throw new UserError(`${src.where}/${name}: pad_token ${JSON.stringify(content)} is not in tokenizer.json's vocabulary`)
      from = `${src.where}/${name}`
    }
    if (id === undefined) {
      if (!config) throw new UserError(`${file}: no pad token (tokenizer_config.json or special_tokens_map.json names none)`)
      return config.pad_token_id
    }
    if (config && config.model_type === 'roberta' && id !== config.pad_token_id) {
      throw new UserError(`${from}: the pad token has id ${id}, but config.json has pad_token_id ${config.pad_token_id}; RoBERTa position ids need them equal`)
    }
    return id
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
