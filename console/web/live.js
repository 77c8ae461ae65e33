// The live WebSocket (/api/ws): reconnects on its own and, on every
// (re)connection, asks the relay to resume each conversation the page
// holds from the last sequence number it has, so nothing sent while the
// connection was down is missed. The page deduplicates by seq.

const BACKOFF_MS = [300, 1000, 2000, 4000, 8000, 15000];

export class Live {
  // onFrame(frame) gets every server frame; onState(state) gets
  // 'connecting' | 'live' | 'offline'; resumeList() returns [[conv, seq]]
  // to resume after each connection; onOpen() runs after those resumes;
  // onSignedOut() runs, instead of a reconnection, when the relay closes
  // the socket because its credential no longer holds (a sign-out
  // elsewhere, an expired session, a changed password): the page finds
  // out whether it is still signed in, and reconnects (retry) if so.
  constructor({ onFrame, onState, resumeList, onOpen, onSignedOut }) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.resumeList = resumeList;
    this.onOpen = onOpen || (() => {});
    this.onSignedOut = onSignedOut || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.stopped = true;
    this.state = 'connecting';
    this.onOnline = () => { if (!this.stopped) this.connectNow(); };
    this.onOffline = () => { if (!this.stopped) this.drop(); };
  }

  start() {
    this.stopped = false;
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    clearTimeout(this.timer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000, 'signed out'); this.ws = null; }
  }

  // drop closes the connection as if the network had failed; the usual
  // reconnection follows (at once when the browser is online again).
  drop() {
    if (this.ws) this.ws.close(4000, 'offline');
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.onState(s);
  }

  connectNow() {
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.attempt = 0;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.setState(this.attempt === 0 ? 'connecting' : 'offline');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`;
    let ws;
    try { ws = new WebSocket(url); } catch { this.retry(); return; }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      for (const [conv, seq] of this.resumeList()) this.send({ type: 'resume', conv, seq });
      this.setState('live');
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      this.onFrame(f);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.ws = null;
      if (ev.reason === 'signed_out') {
        this.onSignedOut();
        return;
      }
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.setState('offline');
    // While the browser says it is offline, wait for its 'online' event
    // (with a slow try now and then, in case it is wrong).
    const base = navigator.onLine === false ? BACKOFF_MS[BACKOFF_MS.length - 1] : BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), base * (0.8 + Math.random() * 0.4));
  }

  // resume asks for what conv holds after seq; harmless when offline
  // (the next connection resumes it).
  resume(conv, seq) { this.send({ type: 'resume', conv, seq }); }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }
}
