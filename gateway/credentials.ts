/**
 * The credentials that prove a client is a generation's producer (PROTOCOL §7.1): the tag the
 * gateway draws for each epoch it makes (part of the token it answers with), and the digest of
 * the secret a producer may send with its first open. Stores keep the tag and the digest, never
 * the secret itself.
 */
import { createHash, randomBytes } from 'node:crypto';

/** A fresh token tag: 128 random bits, base64url (22 chars, within protocol/token.ts TAG_PATTERN). */
export function newTag(): string {
  return randomBytes(16).toString('base64url');
}

/** What the store remembers of a producer's secret: SHA-256, base64url. */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}
