// What the gateway's parts log through (docs/architecture.md §1): pino's shape. Tokens and keys are
// never passed to it.

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const NO_LOG: Logger = { debug() {}, info() {}, warn() {}, error() {} };
