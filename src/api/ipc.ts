/**
 * The tunnel's UAPI (wireguard-go's IpcGet/IpcSet): what the protocol reads and changes, and
 * set errors as WgnetErrors that keep the errno wireguard-go would answer.
 */
import type { Engine } from '../io/engine.js';
import type { Peer } from '../wireguard/device.js';
import { uapiGet, parseUapiSet, applyUapiSet, UapiError, type UapiHost } from '../wireguard/uapi.js';
import { WgnetError } from '../util/errors.js';

export class TunnelIpc {
  /** Kept and reported: Node's dgram cannot set SO_MARK, as on platforms without fwmark. */
  fwmark = 0;

  constructor(
    private readonly engine: Engine,
    private readonly listenPort: () => number,
    /** Peers a set added or changed (their handshakes start) and removed ones dropped. */
    private readonly applied: (peers: Peer[]) => void,
  ) {}

  host(): UapiHost {
    return {
      device: this.engine.device,
      listenPort: this.listenPort,
      setListenPort: (port) => this.engine.bind!.rebind(port),
      fwmark: () => this.fwmark,
      setFwmark: (mark) => {
        this.fwmark = mark;
      },
    };
  }

  get(): string {
    return uapiGet(this.host());
  }

  async set(text: string): Promise<void> {
    try {
      this.applied(await applyUapiSet(this.host(), parseUapiSet(text)));
    } catch (err) {
      if (err instanceof UapiError) {
        const e = new WgnetError('ERR_WGNET_UAPI', `UAPI set failed (errno=${err.errno}): ${err.message}`);
        (e as WgnetError & { errno?: number }).errno = err.errno;
        throw e;
      }
      throw err;
    }
  }
}
