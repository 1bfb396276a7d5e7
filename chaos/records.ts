/**
 * What a chaos run records (the format of the checker's input and of its fixtures) and what the
 * checker reports: the types checker.ts and incarnations.ts share.
 */
import type { EndStatus, ReadItem } from '../protocol/types';

export interface AckRecord {
  readonly seq: number;
  readonly offset: number;
}

export interface ProducerRecord {
  readonly session: string;
  readonly generation: string;
  /** 'sdk': the SDK's Generation; 'raw': frames written by hand (duplicate storms, stale writers). */
  readonly via: 'sdk' | 'raw';
  readonly takeover: boolean;
  /** Every ack that advanced the durable point, in arrival order. */
  readonly acks: AckRecord[];
  /**
   * What the producer wrote: `written[seq]` is the `chunkDigest` of chunk seq as it sent it.
   * Absent in histories recorded before issue 9; then its chunks' content is not checked.
   */
  readonly written?: Array<string | null>;
  finished?: { readonly offset: number; readonly status: EndStatus };
  /** How it ended for the producer: 'fenced' (taken over), 'failed' (another error), 'finished'. */
  outcome: 'running' | 'finished' | 'fenced' | 'failed';
  error?: string;
  /** The error code it ended with ('failed', 'fenced'). */
  errorCode?: string;
  /** The session's incarnation it wrote in (incarnations.ts). @default 0 */
  readonly incarnation?: number;
}

/** A producer record the workload is filling in: it always writes down what it wrote. */
export type LiveProducerRecord = ProducerRecord & { readonly written: Array<string | null> };

export interface AppendRecord {
  readonly session: string;
  readonly key: string;
  readonly offset: number;
  /** The session's incarnation it was appended in (incarnations.ts). @default 0 */
  readonly incarnation?: number;
}

export interface ReaderStint {
  readonly from: number;
  /** Which gateway served it (for the report). */
  readonly gateway?: number;
  readonly items: ReadItem[];
  /**
   * Where the subscription's connection dropped (the SDK then resubscribed from its offset): the
   * number of items delivered before. Items of the old connection still buffered may follow.
   */
  readonly breaks?: number[];
  /** The error code that ended the subscription (SESSION_DELETED, …), when one did. */
  end?: string;
}

export interface ReaderRecord {
  readonly id: string;
  readonly session: string;
  readonly stints: ReaderStint[];
}

/**
 * One attempt of the second writer (workload.ts, second-writer.ts) to get into another producer's
 * generation without its token, and what the gateway answered.
 */
export interface IntrusionRecord {
  readonly session: string;
  readonly generation: string;
  /** What it tried, e.g. `open-no-token`, `open-forged-token`, `chunks-forged-token`, `finish-stale-token`. */
  readonly attempt: string;
  /** The seq a chunk/chunks/finish frame carried. */
  readonly seq?: number;
  /** An error code, the type of a frame that was not an error (`opened`, `ack`, `finished`), or `no-answer`. */
  readonly answer: string;
  /** The answering frame, when it was not a refusal. */
  readonly frame?: unknown;
}

/** Everything a run observed; also the format of the checker's fixtures. */
export interface RecordedHistory {
  readonly scenario: string;
  readonly seed: number;
  /** Retention was configured low: gaps are legitimate where retention trimmed. Otherwise any gap is a violation. */
  readonly retentionPressure: boolean;
  readonly producers: ProducerRecord[];
  readonly appends: AppendRecord[];
  readonly readers: ReaderRecord[];
  /** Each session's log read from offset 0 at the end. */
  readonly logs: Record<string, ReadItem[]>;
  /** The second writer's attempts (absent in histories recorded before issue 9). */
  readonly intrusions?: IntrusionRecord[];
  /** Sessions deleted while the run went on, in order per session (absent before issue 13's deletes). */
  readonly deletes?: DeleteRecord[];
}

/** An operator's delete of a session (PROTOCOL §10.6), as the admin API answered it. */
export interface DeleteRecord {
  readonly session: string;
  /** The incarnation it ended: 0 for the session as first written, 1 after one delete, … */
  readonly incarnation: number;
  /** The deleted incarnation's head: nothing of it was acknowledged or delivered past it (absent when the answer was lost). */
  readonly head?: number;
  /** The generation it ended (null: none was active). */
  readonly fenced?: string | null;
}

export type Rule =
  | 'lost-ack'
  | 'ack-mismatch'
  | 'duplicate-stored'
  | 'duplicate-delivery'
  | 'order'
  | 'silent-hole'
  | 'gen-end-count'
  | 'write-after-fence'
  | 'ack-after-fence'
  | 'fence-not-atomic'
  | 'unexpected-gap'
  | 'gap-over-retained'
  | 'wrong-event'
  | 'phantom-event'
  | 'resume-seam'
  | 'unresumed'
  | 'finish-mismatch'
  | 'content-mismatch'
  | 'intruder-accepted'
  | 'stale-incarnation'
  | 'missed-terminal'
  | 'unexpected-terminal'
  | 'ack-after-delete'
  | 'delete-answer';

export interface Violation {
  readonly rule: Rule;
  readonly session: string;
  /** 'log', 'producer <generation>' or 'reader <id>'. */
  readonly where: string;
  readonly message: string;
  /** The first bad event (or gap, or ack) as recorded. */
  readonly event: unknown;
}

export interface CheckStats {
  sessions: number;
  logEvents: number;
  logGaps: number;
  generations: number;
  fenced: number;
  acksChecked: number;
  appendsChecked: number;
  readers: number;
  stints: number;
  delivered: number;
  deliveredGaps: number;
  /** Chunks (stored and delivered) whose content was compared with what their producer wrote. */
  contentChecked: number;
  intrusions: number;
  /** Incarnations checked (a session deleted once has two). */
  incarnations: number;
  /** Subscriptions that ended with a delete's terminal answer (SESSION_DELETED, SESSION_REWOUND, OFFSET_OUT_OF_RANGE). */
  terminalAnswers: number;
  /** Readers that reconnected across a delete into the next incarnation without a terminal answer (PROTOCOL §10.6, no tombstone). */
  silentSwitches: number;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly violations: Violation[];
  readonly stats: CheckStats;
}

/** How a check reports one violation. */
export type Add = (rule: Rule, session: string, where: string, message: string, event: unknown) => void;
