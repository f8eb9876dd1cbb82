/**
 * vscode-jsonrpc over a `ws` WebSocket: one text frame = one JSON-RPC message. Binary frames are
 * handed to `onBinary` (tile pixels). Frames that are not valid JSON-RPC are answered here with
 * ParseError / InvalidRequest, since vscode-jsonrpc only ever sees well-formed messages.
 *
 * Hardening: nothing a peer sends can throw out of the socket's event handlers (an exception there
 * would end the whole process); a peer that stops reading while messages pile up for it is dropped
 * (`maxBufferedBytes`).
 */
import type WebSocket from 'ws';
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message, type MessageReader, type MessageWriter } from 'vscode-jsonrpc';
import { ErrorCodes } from '../../protocol';

export interface TransportOptions {
  /** Called for every frame received (activity tracking). */
  onActivity?: () => void;
  /** Called when an unexpected exception escaped a handler; the session decides what to do. */
  onInternalError?: (err: unknown, where: string) => void;
  /** Called for each text frame answered here with an error (not JSON, not JSON-RPC). */
  onProtocolError?: (code: number, message: string) => void;
  /** Close the connection when this many bytes wait to be sent to the peer (it does not read). */
  maxBufferedBytes?: number;
  /** Called once when the connection is closed for that reason. */
  onOverflow?: (bufferedBytes: number) => void;
  /** While this says true, nothing the peer sends is read any more (a refused connection that is closing). */
  isClosed?: () => boolean;
}

/**
 * Sets the largest message this one socket accepts (ws checks it per frame, before buffering, and
 * closes with 1009 above it). ws only has a server-wide `maxPayload`; the per-socket value is its
 * receiver's `_maxPayload` (ws 8), so this fails loudly should a ws update rename it.
 */
export function setMaxPayload(socket: WebSocket, bytes: number): void {
  const receiver = (socket as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') throw new Error('ws internals changed: cannot set a per-connection message size limit');
  receiver._maxPayload = bytes;
}

/** Notifications vscode-jsonrpc handles itself; their params are dereferenced without checks. */
const BUILTIN_NOTIFICATIONS = new Set(['$/cancelRequest', '$/progress', '$/setTrace', '$/logTrace']);

/** Sends unless the socket is closed; drops the connection when the peer stopped reading. */
function guardedSend(socket: WebSocket, data: string, options: Pick<TransportOptions, 'maxBufferedBytes' | 'onOverflow'>, cb?: (err?: Error) => void): boolean {
  if (socket.readyState !== socket.OPEN) return false;
  const max = options.maxBufferedBytes;
  // bufferedAmount counts bytes; so must the message (a UTF-16 length undercounts non-ASCII text).
  if (max !== undefined && socket.bufferedAmount + Buffer.byteLength(data, 'utf8') > max) {
    options.onOverflow?.(socket.bufferedAmount);
    socket.close(1008, 'too many unread messages: the client does not read what the server sends');
    // A peer that does not read will not complete the closing handshake either.
    setTimeout(() => socket.terminate(), 1000).unref();
    return false;
  }
  socket.send(data, cb);
  return true;
}

export class WebSocketMessageReader extends AbstractMessageReader implements MessageReader {
  private callback: DataCallback | null = null;
  private readonly buffered: Message[] = [];

  constructor(private readonly socket: WebSocket, private readonly onBinary: (data: Buffer) => void, private readonly options: TransportOptions = {}) {
    super();
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      try {
        if (this.options.isClosed?.()) return;
        this.options.onActivity?.();
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        if (isBinary) { this.onBinary(buf); return; }
        const msg = this.parse(buf.toString('utf8'));
        if (!msg) return;
        if (this.callback) this.callback(msg); else this.buffered.push(msg);
      } catch (err) {
        this.internalError(err, isBinary ? 'binary frame' : 'text frame');
      }
    });
    socket.on('error', (err) => this.fireError(err));
    socket.on('close', () => this.fireClose());
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    for (const m of this.buffered.splice(0)) {
      if (this.options.isClosed?.()) break;
      try { callback(m); } catch (err) { this.internalError(err, 'text frame'); }
    }
    return { dispose: () => { this.callback = null; } };
  }

  private internalError(err: unknown, where: string): void {
    if (this.options.onInternalError) this.options.onInternalError(err, where);
    else if (this.socket.readyState === this.socket.OPEN) this.socket.close(1011, 'internal error');
  }

  private parse(text: string): Message | null {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.replyError(null, ErrorCodes.ParseError, `Parse error: the text frame is not valid JSON (${(err as Error).message.slice(0, 200)})`);
      return null;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.replyError(null, ErrorCodes.InvalidRequest, Array.isArray(value)
        ? 'Invalid request: JSON-RPC batches are not supported; send one message per text frame'
        : 'Invalid request: a JSON-RPC message must be a JSON object');
      return null;
    }
    const m = value as Record<string, unknown>;
    const id = typeof m.id === 'number' || typeof m.id === 'string' ? m.id : null;
    if ('id' in m && m.id !== null && id === null) {
      this.replyError(null, ErrorCodes.InvalidRequest, 'Invalid request: "id" must be a number or a string');
      return null;
    }
    if (m.jsonrpc !== '2.0') {
      this.replyError(id, ErrorCodes.InvalidRequest, 'Invalid request: "jsonrpc" must be "2.0"');
      return null;
    }
    const isRequestOrNotification = typeof m.method === 'string';
    const isResponse = !('method' in m) && id !== null && ('result' in m || 'error' in m);
    if (!isRequestOrNotification && !isResponse) {
      this.replyError(id, ErrorCodes.InvalidRequest, 'Invalid request: "method" must be a string');
      return null;
    }
    if (isRequestOrNotification && 'params' in m && (typeof m.params !== 'object' || m.params === null)) {
      if (id !== null) this.replyError(id, ErrorCodes.InvalidParams, 'Invalid params: "params" must be an object');
      return null;
    }
    if (isRequestOrNotification && id === null && BUILTIN_NOTIFICATIONS.has(m.method as string)) {
      // The server never sends requests a client could cancel, nor uses progress or tracing;
      // vscode-jsonrpc would dereference these notifications' params unchecked.
      return null;
    }
    return m as unknown as Message;
  }

  private replyError(id: number | string | null, code: number, message: string): void {
    this.options.onProtocolError?.(code, message);
    guardedSend(this.socket, JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }), this.options);
  }
}

export class WebSocketMessageWriter extends AbstractMessageWriter implements MessageWriter {
  constructor(private readonly socket: WebSocket, private readonly options: Pick<TransportOptions, 'maxBufferedBytes' | 'onOverflow'> = {}) { super(); }

  write(msg: Message): Promise<void> {
    return new Promise((resolve) => {
      const sent = guardedSend(this.socket, JSON.stringify(msg), this.options, (err) => {
        if (err) this.fireError([err, msg, 0]);
        resolve();
      });
      if (!sent) resolve();
    });
  }

  end(): void { /* the socket's owner closes it */ }
}
