/** Errors a user can act on: the message says what is wrong, where, and what to do. */
export class UserError extends Error {
  override name = 'UserError'
  constructor(message: string, readonly code = 'ERR_USER') {
    super(message)
  }
}

export class ConfigError extends UserError {
  override name = 'ConfigError'
  constructor(message: string) {
    super(message, 'ERR_CONFIG')
  }
}

export class DataError extends UserError {
  override name = 'DataError'
  constructor(message: string, readonly file?: string, readonly line?: number) {
    super(message, 'ERR_DATA')
  }
}

/** A payload (delta, checkpoint, wire message) that failed validation: rejected, never used. */
export class PayloadError extends Error {
  override name = 'PayloadError'
  constructor(message: string, readonly reason = 'invalid') {
    super(message)
  }
}
