// AudioWorklet processors for the voiceagent page.
//   "capture":  microphone -> mono PCM16 at 24 kHz, posted in 40 ms batches.
//   "playback": a queue of 24 kHz Float32 chunks -> speaker, counting per item
//               how many samples were really played (for audio_end_ms and latency).
// The page asks for a 24 kHz AudioContext, so both normally pass samples straight
// through; where a browser runs the context at another rate they convert with
// linear interpolation, which is plenty for speech.

const RATE = 24000;
const BATCH = 960; // 40 ms at 24 kHz: small enough for quick turn-taking, few messages

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE; // context samples per 24 kHz sample
    this.pos = 0; // read position in the current block; -1 means the previous block's last sample
    this.prev = 0;
    this.out = new Int16Array(BATCH);
    this.n = 0;
  }

  process(inputs) {
    const chans = inputs[0];
    if (!chans || chans.length === 0) return true; // no mic connected (yet)
    const len = chans[0].length;
    // Mono: average the channels (Chrome's fake capture device is stereo).
    if (!this.mono || this.mono.length !== len) this.mono = new Float32Array(len); // no garbage per block
    const mono = this.mono.fill(0);
    for (const ch of chans) for (let i = 0; i < len; i++) mono[i] += ch[i] / chans.length;
    for (; this.pos < len - 1; this.pos += this.step) {
      const i = Math.floor(this.pos);
      const a = i < 0 ? this.prev : mono[i];
      const v = a + (mono[i + 1] - a) * (this.pos - i);
      this.out[this.n++] = Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
      if (this.n === BATCH) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]); // transfer, no copy
        this.out = new Int16Array(BATCH);
        this.n = 0;
      }
    }
    this.pos -= len;
    this.prev = mono[len - 1];
    return true;
  }
}

class Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.tap = Boolean(options.processorOptions && options.processorOptions.tap);
    this.step = RATE / sampleRate; // 24 kHz samples per output sample
    this.queue = []; // [{item, data: Float32Array}], played in order, no extra buffering
    this.read = 0; // fractional read position in queue[0].data
    this.played = new Map(); // item id -> 24 kHz samples played so far
    this.current = null; // the item whose audio is playing now
    this.sinceReport = 0;
    this.reportEvery = Math.round(sampleRate * 0.05); // ~50 ms
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "chunk") this.queue.push({ item: m.item, data: m.data });
      else if (m.type === "flush") {
        // Drop everything queued at once; say how far the playing item got.
        const item = this.current;
        this.queue = [];
        this.read = 0;
        this.current = null;
        this.port.postMessage({
          type: "flushed",
          item,
          samples: this.played.get(item) || 0,
          counts: Object.fromEntries(this.played),
        });
      }
    };
  }

  report(item, end) {
    this.port.postMessage({ type: "played", item, samples: this.played.get(item) || 0, end });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const tapped = this.tap ? [] : null;
    for (let k = 0; k < out.length; k++) {
      const c = this.queue[0];
      if (!c) {
        if (this.current !== null) this.report(this.current, true); // ran dry: item's end (for now)
        this.current = null;
        out[k] = 0;
        continue;
      }
      if (c.item !== this.current) {
        if (this.current !== null) this.report(this.current, true);
        this.current = c.item;
        if (!this.played.has(c.item)) {
          this.played.set(c.item, 0);
          // Its first sample: say when, on the context's clock (the page maps it to wall time).
          this.port.postMessage({ type: "started", item: c.item, time: currentTime + k / sampleRate });
        }
      }
      const i = Math.floor(this.read);
      const b = i + 1 < c.data.length ? c.data[i + 1] : c.data[i];
      out[k] = c.data[i] + (b - c.data[i]) * (this.read - i);
      this.read += this.step;
      const next = Math.min(Math.floor(this.read), c.data.length);
      if (next > i) {
        this.played.set(c.item, this.played.get(c.item) + (next - i));
        if (tapped) tapped.push(c.data.subarray(i, next));
      }
      if (this.read >= c.data.length) {
        this.queue.shift();
        this.read -= c.data.length;
      }
    }
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    this.sinceReport += out.length;
    if (this.current !== null && this.sinceReport >= this.reportEvery) {
      this.sinceReport = 0;
      this.report(this.current, false);
    }
    if (tapped && tapped.length) {
      const data = new Float32Array(tapped.reduce((n, a) => n + a.length, 0));
      let o = 0;
      for (const a of tapped) {
        data.set(a, o);
        o += a.length;
      }
      this.port.postMessage({ type: "tap", data }, [data.buffer]);
    }
    return true;
  }
}

registerProcessor("capture", Capture);
registerProcessor("playback", Playback);
