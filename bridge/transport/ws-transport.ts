/**
 * vscode-jsonrpc over a `ws` WebSocket: one text frame = one JSON-RPC message. Binary frames are
 * handed to `onBinary` (tile pixels). Frames that are not valid JSON-RPC are answered here with
 * ParseError / InvalidRequest, since vscode-jsonrpc only ever sees well-formed messages.
 */
import type WebSocket from 'ws';
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message, type MessageReader, type MessageWriter } from 'vscode-jsonrpc';
import { ErrorCodes } from '../../protocol';

export class WebSocketMessageReader extends AbstractMessageReader implements MessageReader {
  private callback: DataCallback | null = null;
  private readonly buffered: Message[] = [];

  constructor(private readonly socket: WebSocket, private readonly onBinary: (data: Buffer) => void) {
    super();
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (isBinary) { this.onBinary(buf); return; }
      const msg = this.parse(buf.toString('utf8'));
      if (!msg) return;
      if (this.callback) this.callback(msg); else this.buffered.push(msg);
    });
    socket.on('error', (err) => this.fireError(err));
    socket.on('close', () => this.fireClose());
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    for (const m of this.buffered.splice(0)) callback(m);
    return { dispose: () => { this.callback = null; } };
  }

  private parse(text: string): Message | null {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.replyError(null, ErrorCodes.ParseError, `Parse error: the text frame is not valid JSON (${(err as Error).message})`);
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
    return m as unknown as Message;
  }

  private replyError(id: number | string | null, code: number, message: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }));
  }
}

export class WebSocketMessageWriter extends AbstractMessageWriter implements MessageWriter {
  constructor(private readonly socket: WebSocket) { super(); }

  write(msg: Message): Promise<void> {
    if (this.socket.readyState !== this.socket.OPEN) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.send(JSON.stringify(msg), (err) => {
        if (err) this.fireError([err, msg, 0]);
        resolve();
      });
    });
  }

  end(): void { /* the socket's owner closes it */ }
}
