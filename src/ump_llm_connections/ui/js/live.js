// Live updates: the server's connection events (GET /api/events) read with fetch (EventSource
// cannot send the token); when the stream cannot be held, a poll every POLL_MS instead.
// Listeners get each event ({type, data}) or {type: "poll"} when it is time to re-read.
import { headers } from "./api.js";

const POLL_MS = 10000;
const listeners = new Set();
let started = false;
export const liveState = { mode: "connecting" }; // "live" | "polling" | "connecting"

export function onLive(listener) {
  listeners.add(listener);
  if (!started) { started = true; follow(); }
  return () => listeners.delete(listener);
}

function emit(event) {
  for (const listener of listeners) {
    try { listener(event); } catch (error) { console.error(error); }
  }
}

function setMode(mode) {
  if (liveState.mode !== mode) {
    liveState.mode = mode;
    emit({ type: "live.mode", data: { mode } });
  }
}

async function follow() {
  let failures = 0;
  let poller = null;
  for (;;) {
    try {
      const response = await fetch("/api/events", { headers: headers({ Accept: "text/event-stream" }) });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      failures = 0;
      clearInterval(poller);
      poller = null;
      setMode("live");
      emit({ type: "poll" }); // events may have been missed while away
      await read(response.body);
    } catch (error) {
      failures += 1;
    }
    if (!poller) {
      setMode("polling");
      poller = setInterval(() => emit({ type: "poll" }), POLL_MS);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(30000, 1000 * 2 ** Math.min(failures, 5))));
  }
}

async function read(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (type === "overflow" || type === "shutdown" || type === "unauthorized") return;
      if (type === "ready" || !data.length) continue;
      try { emit(JSON.parse(data.join("\n"))); } catch { /* not an event */ }
    }
  }
}
