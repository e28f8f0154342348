/**
 * The shared lexicon of the synthetic demo tasks. Every task draws from the same word clusters,
 * so what one node's encoder learns about a word (that "superb" is positive and opinionated,
 * that "telescope" is science) is useful to the nodes with other tasks: the reason to fuse.
 */

const w = (s: string): readonly string[] => Object.freeze(s.trim().split(/\s+/))

export const POSITIVE_ADJ = w(`good great excellent wonderful superb delightful brilliant pleasant lovely charming
  impressive fantastic terrific enjoyable splendid marvelous outstanding remarkable elegant graceful vivid warm
  generous thrilling satisfying clever gorgeous joyful inspiring flawless`)

export const NEGATIVE_ADJ = w(`bad awful terrible poor dull boring weak horrible dreadful mediocre clumsy bland
  tedious messy sloppy disappointing annoying painful ugly stale shallow lazy grim cheap tiresome miserable
  lousy shoddy frustrating pathetic`)

export const TOPICS = ['sports', 'science', 'food', 'travel'] as const
export type Topic = (typeof TOPICS)[number]

export const TOPIC_NOUNS: Readonly<Record<Topic, readonly string[]>> = {
  sports: w(`match team goal coach league player stadium season tournament referee striker race medal score
    pitch inning racket marathon champion defense goalkeeper court playoff athlete trophy rally sprint fans
    halftime jersey`),
  science: w(`experiment theory molecule telescope laboratory atom gene hypothesis physicist chemist protein
    cell galaxy particle equation sample microscope enzyme fossil orbit neuron reactor climate vaccine crystal
    isotope planet bacteria formula satellite`),
  food: w(`soup bread cheese pasta salad recipe kitchen chef dessert sauce flavor noodle pastry spice curry
    breakfast dinner oven butter garlic steak pie rice menu bakery tomato lunch cookie broth onion`),
  travel: w(`flight hotel airport passport journey beach luggage train voyage island tourist museum ticket
    harbor map cruise village border resort highway station suitcase guide trip coast mountain valley ferry
    hostel itinerary`),
}

/** Opinion markers (subjective) and report markers (objective). */
export const SUBJECTIVE_VERBS = w(`love hate adore admire enjoy prefer dislike despise cherish appreciate detest
  regret resent treasure loathe`)
export const SUBJECTIVE_ADV = w(`honestly frankly surely sadly luckily personally truly obviously hopefully
  fortunately unfortunately arguably definitely absolutely seriously`)
export const SUBJECTIVE_LEADS = w(`think believe feel suspect guess reckon doubt suppose`)
export const OBJECTIVE_VERBS = w(`measured reported recorded listed announced scheduled located contained
  included built opened published released weighed counted`)
export const OBJECTIVE_ADV = w(`officially annually recently daily previously currently formally publicly
  weekly initially typically approximately exactly nearly formerly`)
export const NUMBERS = w(`two three four five six seven eight ten twelve twenty thirty forty hundred thousand
  dozen several`)
export const UNITS = w(`meters kilometers hours minutes days weeks years percent grams kilograms people
  pages degrees dollars`)

/** Question words and the answer types they ask for (the question task). */
export const ANSWER_TYPES = ['person', 'location', 'number', 'reason'] as const
export type AnswerType = (typeof ANSWER_TYPES)[number]
export const QUESTION_LEADS: Readonly<Record<AnswerType, readonly string[][]>> = {
  person: [['who'], ['whom', 'did'], ['whose'], ['which', 'person'], ['what', 'person'], ['which', 'player'], ['which', 'scientist'], ['which', 'author'], ['which', 'captain'], ['what', 'name']],
  location: [['where'], ['which', 'city'], ['what', 'country'], ['which', 'town'], ['what', 'place'], ['which', 'region'], ['in', 'which', 'street'], ['from', 'where']],
  number: [['how', 'many'], ['how', 'much'], ['what', 'year'], ['how', 'long'], ['how', 'far'], ['what', 'number'], ['which', 'year'], ['what', 'amount'], ['how', 'old']],
  reason: [['why'], ['how', 'come'], ['for', 'what', 'reason'], ['what', 'caused'], ['what', 'explains'], ['which', 'reason'], ['what', 'purpose'], ['what', 'motive']],
}
export const QUESTION_AUX = w(`did does was is were could would will`)

export const NEGATORS = w(`not never hardly barely scarcely`)
export const INTENSIFIERS = w(`very really quite rather extremely truly so pretty fairly incredibly`)
export const DETERMINERS = w(`the a this that our their my your his her every one`)
export const PRONOUNS = w(`i we they you he she`)
export const PEOPLE = w(`people friends family crowd visitors students critics reporters staff children
  neighbors colleagues locals guests experts`)
export const NEUTRAL_VERBS = w(`saw visited watched tried found made took had described discussed mentioned
  noticed reviewed followed checked`)
export const PREPOSITIONS = w(`in on at with about after before during near from for around across behind`)
export const TIME_WORDS = w(`yesterday today tonight morning evening weekend monday friday spring summer autumn
  winter`)
export const FILLERS = w(`and then also just still even again anyway there here later soon already
  together maybe perhaps`)
export const COPULAS = w(`was is seemed looked felt became`)

export function lexiconSize(): number {
  const all = new Set<string>([
    ...POSITIVE_ADJ, ...NEGATIVE_ADJ, ...Object.values(TOPIC_NOUNS).flat(), ...SUBJECTIVE_VERBS, ...SUBJECTIVE_ADV,
    ...SUBJECTIVE_LEADS, ...OBJECTIVE_VERBS, ...OBJECTIVE_ADV, ...NUMBERS, ...UNITS,
    ...Object.values(QUESTION_LEADS).flat(2), ...QUESTION_AUX, ...NEGATORS, ...INTENSIFIERS, ...DETERMINERS,
    ...PRONOUNS, ...PEOPLE, ...NEUTRAL_VERBS, ...PREPOSITIONS, ...TIME_WORDS, ...FILLERS, ...COPULAS,
  ])
  return all.size
}
