// voiceagent in the browser: microphone -> OpenAI Realtime events over a WebSocket
// -> speaker, with live captions. Audio is PCM16 mono at 24 kHz, base64 in JSON.

const RATE = 24000;
const TOKEN_KEY = "voiceagent.token";
const params = new URLSearchParams(location.search);
const TAP = params.get("tap") === "1";
const $ = (id) => document.getElementById(id);

const SESSION = {
  type: "session.update",
  session: {
    type: "realtime",
    audio: {
      input: { format: { type: "audio/pcm", rate: RATE }, transcription: { model: "whisper-1" } },
      output: { format: { type: "audio/pcm", rate: RATE } },
    },
  },
};

// ---- the token: #token=... once, then localStorage (the fragment never reaches the server)
let token = "";
try {
  token = localStorage.getItem(TOKEN_KEY) || "";
} catch {}
{
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    saveToken(decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search); // keep it out of history
  } else if (params.has("token")) {
    // ?token= works too (a link someone typed), though #token= keeps it off the wire
    saveToken(params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
}
function saveToken(t) {
  token = t.trim();
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {}
}

// ---- state, and the hooks a headless test reads through the DevTools protocol
const turns = []; // {itemId, responseId, user, userFinal, assistant, cancelled, done, latencyMs, stoppedAt}
const va = (window.voiceagent = {
  state: "idle",
  events: [], // server event types, in order
  playedChunks: [], // with ?tap=1: every block really played (Float32, 24 kHz)
  audioEndMs: {}, // assistant item id -> ms of it played so far (from the playback worklet)
  get captions() {
    return turns
      .filter((t) => t.user || t.assistant)
      .map(({ user, userFinal, assistant, cancelled, latencyMs }) => ({ user, userFinal, assistant, cancelled, latencyMs }));
  },
  start,
  playedWavBase64,
});

let ctx = null, playback = null, stream = null;
let ws = null, muted = false, retryDelay = 1, retryTimer = null;
let statusText = "", lastError = "", errorTimer = null;
let settleFirst = null; // resolves start() once the first connection attempt is decided
const respItem = new Map(); // response id -> its assistant audio item id
const itemTurn = new Map(); // assistant item id -> turn
const cancelled = new Set(); // response ids whose remaining audio must not play
const flushWaiters = []; // resolvers for the playback worklet's "flushed" replies, in order

function setState(state, text) {
  va.state = state;
  statusText = text || { connecting: "connecting…" }[state] || state;
  $("status").textContent = lastError ? `${statusText} — ${lastError}` : statusText;
  $("status").dataset.state = state;
  $("mute").textContent = muted ? "Unmute" : "Mute";
  $("mute").setAttribute("aria-pressed", String(muted));
  $("send").disabled = $("stop").disabled = !(ws && ws.readyState === WebSocket.OPEN);
}
function showError(message) {
  lastError = message; // shown beside the state for a while, then cleared
  setState(va.state, statusText);
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => {
    lastError = "";
    setState(va.state, statusText);
  }, 8000);
}

// ---- audio: one AudioContext and microphone for the page's life, across reconnects
async function start() {
  if (ctx) return va.state;
  // Created in the click handler, before any await: browsers only let a user gesture start audio.
  ctx = new AudioContext({ sampleRate: RATE });
  const resumed = ctx.resume();
  setState("connecting", "starting the microphone…");
  try {
    // The browser's echo canceller keeps the reply out of the mic; the server runs none for us.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    await resumed;
    await ctx.audioWorklet.addModule("worklets.js");
  } catch (e) {
    ctx.close();
    ctx = null;
    setState("idle", `microphone: ${e.message}`);
    throw e;
  }
  let mic;
  try {
    mic = ctx.createMediaStreamSource(stream); // the context resamples the mic to 24 kHz
  } catch {
    // Firefox cannot resample a microphone: run at the device's rate; the worklets convert.
    ctx.close();
    ctx = new AudioContext();
    ctx.resume(); // allowed without a click now: the page has the microphone
    await ctx.audioWorklet.addModule("worklets.js");
    mic = ctx.createMediaStreamSource(stream);
  }
  const capture = new AudioWorkletNode(ctx, "capture");
  capture.port.onmessage = (e) => {
    if (!muted && ws && ws.readyState === WebSocket.OPEN) {
      send({ type: "input_audio_buffer.append", audio: toBase64(new Uint8Array(e.data)) });
    }
  };
  mic.connect(capture);
  capture.connect(ctx.destination); // it outputs silence; connected so it is always processed
  playback = new AudioWorkletNode(ctx, "playback", { outputChannelCount: [1], processorOptions: { tap: TAP } });
  playback.port.onmessage = (e) => onPlayback(e.data);
  playback.connect(ctx.destination);
  $("start").hidden = true;
  $("controls").hidden = false;
  const first = new Promise((resolve) => (settleFirst = resolve));
  connect();
  await first;
  return va.state;
}

function onPlayback(m) {
  if (m.type === "started") {
    const t = itemTurn.get(m.item);
    if (t && t.latencyMs == null && t.stoppedAt != null) {
      // When the sample reaches the speaker: the context's clock mapped to performance.now().
      const ts = ctx.getOutputTimestamp?.() || {};
      const at = ts.performanceTime ? ts.performanceTime + (m.time - ts.contextTime) * 1000 : performance.now();
      t.latencyMs = Math.round(at - t.stoppedAt);
      render(t);
    }
  } else if (m.type === "played") va.audioEndMs[m.item] = Math.floor((m.samples * 1000) / RATE);
  else if (m.type === "flushed") flushWaiters.shift()?.(m);
  else if (m.type === "tap") va.playedChunks.push(m.data);
}

function flushPlayback() {
  return new Promise((resolve) => {
    flushWaiters.push(resolve);
    playback.port.postMessage({ type: "flush" });
  });
}

// ---- the connection, reconnected with backoff (1, 2, 4 … 10 s) while the mic keeps running
function connect() {
  clearTimeout(retryTimer);
  const protocols = ["realtime"];
  if (token) protocols.push("openai-insecure-api-key." + token); // browsers cannot set Authorization
  let sock;
  try {
    sock = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/realtime", protocols);
  } catch (e) {
    showError("the token holds characters a browser cannot send");
    $("tokenform").hidden = false;
    return retry();
  }
  ws = sock;
  let opened = false;
  setState("connecting");
  sock.onopen = () => {
    opened = true;
    retryDelay = 1;
    $("tokenform").hidden = true;
    send(SESSION);
    setState(muted ? "muted" : "listening");
    settleFirst?.();
    settleFirst = null;
  };
  sock.onmessage = (e) => {
    const now = performance.now(); // e.timeStamp: when it arrived, if the browser says so on this clock
    onEvent(JSON.parse(e.data), e.timeStamp > 0 && e.timeStamp <= now ? e.timeStamp : now);
  };
  sock.onclose = () => {
    if (sock !== ws) return;
    ws = null;
    flushPlayback(); // what was queued belongs to a session that is gone
    for (const t of turns.filter((x) => x.responseId && !x.done)) {
      t.done = t.cancelled = true; // cut off with the connection
      render(t);
    }
    if (!opened) $("tokenform").hidden = false; // refused before opening: most likely the token
    retry();
  };
}

function retry() {
  let left = retryDelay;
  retryDelay = Math.min(retryDelay * 2, 10);
  const tick = () => {
    if (left <= 0) return connect();
    setState("reconnecting", `reconnecting in ${left} s`);
    left -= 1;
    retryTimer = setTimeout(tick, 1000);
  };
  tick();
  settleFirst?.();
  settleFirst = null;
}

function send(event) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event));
}

// ---- server events
function onEvent(ev, arrived) {
  va.events.push(ev.type);
  switch (ev.type) {
    case "input_audio_buffer.speech_stopped":
      userTurn(ev.item_id).stoppedAt = arrived; // latency runs from here (same clock as performance.now())
      break;
    case "input_audio_buffer.speech_started":
      userTurn(ev.item_id); // the live caption goes here (shown once it has text)
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const t = userTurn(ev.item_id);
      t.user += ev.delta || "";
      render(t);
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const t = userTurn(ev.item_id);
      t.user = ev.transcript || "";
      t.userFinal = true;
      render(t);
      break;
    }
    case "response.created":
      responseTurn(ev.response.id);
      break;
    case "response.output_item.added":
      if (ev.item?.type === "message" && !respItem.has(ev.response_id)) respItem.set(ev.response_id, ev.item.id);
      break;
    case "response.output_audio.delta": {
      if (cancelled.has(ev.response_id) || !playback) break;
      if (!respItem.has(ev.response_id)) respItem.set(ev.response_id, ev.item_id);
      itemTurn.set(ev.item_id, responseTurn(ev.response_id));
      const data = fromBase64PCM16(ev.delta);
      playback.port.postMessage({ type: "chunk", item: ev.item_id, data }, [data.buffer]);
      break;
    }
    case "response.output_audio_transcript.delta": {
      const t = responseTurn(ev.response_id);
      t.assistant += ev.delta || "";
      render(t);
      break;
    }
    case "response.output_audio_transcript.done": {
      const t = responseTurn(ev.response_id);
      t.assistant = ev.transcript ?? t.assistant;
      render(t);
      break;
    }
    case "response.done":
      onResponseDone(ev.response);
      break;
    case "error":
      showError(ev.error?.message || "error");
      break;
  }
}

async function onResponseDone(resp) {
  const t = responseTurn(resp.id);
  t.done = true;
  if (resp.status === "failed") showError(resp.status_details?.error?.message || "the reply failed");
  if (resp.status !== "cancelled") return render(t); // completed: the queue plays out
  // Talked over, or Stop: silence it now, then tell the server how much was really heard.
  t.cancelled = true;
  render(t);
  cancelled.add(resp.id);
  const itemId = respItem.get(resp.id) ?? resp.output?.find((o) => o.type === "message")?.id;
  const flushed = await flushPlayback();
  if (!itemId) return;
  const samples = flushed.counts[itemId] || 0;
  va.audioEndMs[itemId] = Math.floor((samples * 1000) / RATE);
  send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: Math.floor((samples * 1000) / RATE) });
}

// ---- turns: a user line, an assistant line and the latency between them
function newTurn(fields) {
  const t = { itemId: null, responseId: null, user: "", userFinal: false, assistant: "", cancelled: false, done: false, latencyMs: null, stoppedAt: null, ...fields };
  turns.push(t);
  return t;
}
function userTurn(itemId) {
  if (itemId == null) return turns.at(-1) || newTurn({});
  return turns.find((t) => t.itemId === itemId) || newTurn({ itemId });
}
function responseTurn(respId) {
  let t = turns.find((x) => x.responseId === respId);
  if (!t) {
    // A reply answers the latest utterance (or typed request) since the last answered turn.
    const open = turns.slice(turns.findLastIndex((x) => x.responseId) + 1);
    t = open.findLast((x) => x.stoppedAt != null || x.userFinal) || open.at(-1) || newTurn({});
    t.responseId = respId;
  }
  return t;
}

let heardTurn = null; // the turn whose partial transcript is in the "heard" area

function render(t) {
  if (!t.user && !t.assistant) return;
  if (!t.el) {
    t.el = document.createElement("li");
    t.el.innerHTML = '<div class="user"></div><div class="assistant"></div><span class="latency"></span>';
    $("turns").append(t.el);
  }
  const [user, assistant, latency] = t.el.children;
  user.textContent = t.user;
  user.classList.toggle("partial", !t.userFinal);
  assistant.textContent = t.assistant + (t.cancelled ? " …" : "");
  assistant.classList.toggle("cancelled", t.cancelled);
  latency.textContent = t.latencyMs == null ? "" : `${t.latencyMs} ms`;
  // The three live areas: what is being said now, the last final transcript, the latest reply.
  if (t.user && !t.userFinal) {
    heardTurn = t;
    $("heard").textContent = t.user;
  }
  if (t.user && t.userFinal) {
    $("said").textContent = t.user;
    if (heardTurn === t) $("heard").textContent = "";
  }
  if (t.assistant && t === turns.findLast((x) => x.assistant)) {
    $("reply").textContent = assistant.textContent;
    $("reply").classList.toggle("cancelled", t.cancelled);
  }
  const list = $("history");
  list.scrollTop = list.scrollHeight;
}

// ---- PCM16 <-> base64, and the played audio as a WAV for tests
function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
function fromBase64PCM16(b64) {
  const bin = atob(b64);
  const out = new Float32Array(bin.length >> 1);
  for (let i = 0; i < out.length; i++) {
    const v = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8); // little-endian
    out[i] = (v >= 0x8000 ? v - 0x10000 : v) / 32768;
  }
  return out;
}
function playedWavBase64() {
  const n = va.playedChunks.reduce((s, c) => s + c.length, 0);
  const v = new DataView(new ArrayBuffer(44 + 2 * n));
  const str = (o, s) => [...s].forEach((c, i) => v.setUint8(o + i, c.charCodeAt(0)));
  str(0, "RIFF");
  v.setUint32(4, 36 + 2 * n, true);
  str(8, "WAVEfmt ");
  // fmt chunk: 16 bytes, PCM, mono, 24 kHz, 2 bytes a frame, 16 bits
  [[16, 16, 4], [20, 1, 2], [22, 1, 2], [24, RATE, 4], [28, 2 * RATE, 4], [32, 2, 2], [34, 16, 2]].forEach(
    ([o, x, size]) => (size === 4 ? v.setUint32(o, x, true) : v.setUint16(o, x, true)),
  );
  str(36, "data");
  v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of va.playedChunks) {
    for (const x of c) {
      v.setInt16(o, Math.max(-32768, Math.min(32767, Math.round(x * 32768))), true);
      o += 2;
    }
  }
  return toBase64(new Uint8Array(v.buffer));
}

// ---- the controls
$("start").onclick = () => start().catch(() => {});
$("mute").onclick = () => {
  muted = !muted; // the mic keeps running; its audio is just not sent
  setState(ws && ws.readyState === WebSocket.OPEN ? (muted ? "muted" : "listening") : va.state);
};
$("stop").onclick = () => send({ type: "response.cancel" }); // the server answers with response.done cancelled
$("textform").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
  newTurn({ user: text, userFinal: true, stoppedAt: performance.now() }); // latency from Send
  render(turns.at(-1));
  send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } });
  send({ type: "response.create" });
  $("text").value = "";
};
$("tokenform").onsubmit = (e) => {
  e.preventDefault();
  saveToken($("token").value);
  $("token").value = "";
  retryDelay = 1;
  if (ctx && !ws) connect();
  else if (!ctx) start().catch(() => {});
};

// Phones suspend audio when the page is hidden; pick it up again when it comes back.
document.addEventListener("visibilitychange", () => ctx?.state === "suspended" && !document.hidden && ctx.resume());

setState("idle", "press Start to talk");
if (params.get("autostart") === "1") start().catch(() => {});
