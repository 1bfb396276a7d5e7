/**
 * A frame sent to many readers: encoded at most once per subprotocol, however many sockets it
 * goes to (DESIGN §3: one encoded frame per batch, written to every reader's socket). The
 * transports take the encoded bytes without changing them, so one buffer serves every socket.
 */
import { encodeFrame, type Encoded } from '../protocol/codec';
import { SUBPROTOCOL_JSON, type ServerFrame, type Subprotocol } from '../protocol/types';

export class SharedFrame {
  private msgpack: Encoded | undefined;
  private json: Encoded | undefined;

  /** `msgpack`: the frame's `spool.v1` bytes when they exist already (a batch the store encoded). */
  constructor(
    readonly frame: ServerFrame,
    msgpack?: Uint8Array,
  ) {
    this.msgpack = msgpack;
  }

  /** The frame's bytes in `protocol`, encoded on first use. */
  encoded(protocol: Subprotocol): Encoded {
    if (protocol === SUBPROTOCOL_JSON) return (this.json ??= encodeFrame(this.frame, protocol));
    return (this.msgpack ??= encodeFrame(this.frame, protocol));
  }
}
