/**
 * Every error the web client raises on purpose, mirroring `disco.errors` in Python.
 *
 *     DiscoError
 *     ├── WeightsError        weights misuse: name/shape mismatch, bad lengths
 *     ├── ProtocolError       malformed or unexpected wire message (code "malformed")
 *     │   └── VersionError    the peer speaks another protocol version (code "version")
 *     ├── ServerError         the server refused us or cannot be reached
 *     │   ├── AccessRefused   a private instance refused to let us in: no valid invitation
 *     │   └── UpdateRejected  the server refused a model update (shape, not_finite, ...)
 *     └── SessionError        illegal state, a wait that timed out
 *         └── StoppedError    the user stopped the session (`FederatedClient.stop()`)
 *
 * Other modules may add their own subclasses of `DiscoError` in their own files.
 */

/** Base class of every error raised on purpose by disco; `name` is the subclass name (kept
 * explicit so that minified builds still show it). */
export class DiscoError extends Error {
  override name = "DiscoError";
}

/** Weights have the wrong names, shapes or values. */
export class WeightsError extends DiscoError {
  override name = "WeightsError";
}

/** A wire message is malformed; `code` is what a server would answer such a frame with. */
export class ProtocolError extends DiscoError {
  override name = "ProtocolError";
  /** `"malformed"`, or `"version"` for a `VersionError`. */
  get code(): "malformed" | "version" {
    return "malformed";
  }
}

/** The peer speaks an incompatible protocol version. */
export class VersionError extends ProtocolError {
  override name = "VersionError";
  override get code(): "malformed" | "version" {
    return "version";
  }
}

/** The server answered with an error or cannot be reached. */
export class ServerError extends DiscoError {
  override name = "ServerError";
}

/**
 * A private instance refused this participant: it presented no invitation for the task, or one
 * that is wrong, expired or revoked (error code "forbidden", close code 4403). Reconnecting
 * cannot help; a valid invitation can.
 */
export class AccessRefused extends ServerError {
  override name = "AccessRefused";
}

/** The server refused a model update; the message says why (`[code] server message`). */
export class UpdateRejected extends ServerError {
  override name = "UpdateRejected";
}

/** An illegal state transition, or a wait that timed out. */
export class SessionError extends DiscoError {
  override name = "SessionError";
}

/** The session was stopped on purpose by `stop()`; not a failure. */
export class StoppedError extends SessionError {
  override name = "StoppedError";
}
