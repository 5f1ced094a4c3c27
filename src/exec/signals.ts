// SIGINT, SIGTERM and SIGHUP never cut a job short of its teardown: before spark-submit starts they stop
// the flow at the next step; while it runs they are forwarded to it (sudo relays them), and after a
// grace period it is killed. Either way the teardown runs and we exit with 128 + the signal's number.
import { SignalledError } from '../errors.ts';

const HANDLED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Where signals come from: the process, or a test's emitter. */
export interface SignalSource {
  on(signal: NodeJS.Signals, handler: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, handler: (signal: NodeJS.Signals) => void): unknown;
}

export class SignalWatcher {
  received: NodeJS.Signals | undefined;
  private forward: ((signal: NodeJS.Signals) => void) | undefined;
  private graceSeconds = 10;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly handler = (signal: NodeJS.Signals) => {
    if (this.received) return; // a second Ctrl-C must not interrupt the teardown
    this.received = signal;
    this.deliver();
  };

  private readonly source: SignalSource;

  constructor(source: SignalSource = process) {
    this.source = source;
    for (const signal of HANDLED) source.on(signal, this.handler);
  }

  forwardTo(forward: (signal: NodeJS.Signals) => void, graceSeconds: number) {
    this.forward = forward;
    this.graceSeconds = graceSeconds;
    this.deliver();
  }

  throwIfReceived() {
    if (this.received) throw new SignalledError(this.received);
  }

  dispose() {
    for (const signal of HANDLED) this.source.off(signal, this.handler);
    clearTimeout(this.killTimer);
  }

  private deliver() {
    if (!this.received || !this.forward) return;
    this.forward(this.received);
    const forward = this.forward;
    // sudo cannot relay SIGKILL: this kills sudo, and a spark-submit that ignored the first signal loses its
    // credentials with the teardown that follows.
    this.killTimer = setTimeout(() => forward('SIGKILL'), this.graceSeconds * 1000);
    this.killTimer.unref();
    this.forward = undefined;
  }
}
