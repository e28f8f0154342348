import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Hugging Face fixture directories and goldens (scripts/reference/make_fixtures.py, hf_reference.py). */
export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/hf')
export const MODELS = ['roberta-mlm', 'roberta-f16', 'bert-pretraining', 'bert-bf16'] as const
