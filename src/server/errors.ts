// OpenAI-shaped errors: { error: { message, type, param, code } } with the HTTP status that fits.

export type ApiErrorType = "invalid_request_error" | "authentication_error" | "not_found_error" | "server_error" | "unavailable_error";

export class ApiError extends Error {
  readonly status: number;
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly code: string | null;
  /** Seconds a client should wait before retrying (503). */
  readonly retryAfter: number | undefined;

  constructor(status: number, message: string, opts: { type?: ApiErrorType; param?: string | null; code?: string | null; retryAfter?: number } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? (status === 401 ? "authentication_error" : status === 404 ? "not_found_error" : status >= 500 ? "server_error" : "invalid_request_error");
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.retryAfter = opts.retryAfter;
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A request field with the wrong type or value (400, naming the field). */
export function badParam(param: string, message: string, code: string | null = "invalid_value"): ApiError {
  return new ApiError(400, `${param}: ${message}`, { param, code });
}
