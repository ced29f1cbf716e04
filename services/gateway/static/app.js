// vcfad web page: detect (upload or record), clone (progress, play, download), check the clone.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { detectBlob: null, detectName: "", cloneBlob: null, recorder: null, chunks: [] };

// -- API key (kept in this browser only) ------------------------------------------------------
$("api-key").value = localStorage.getItem("vcfad-api-key") || "";
$("api-key").addEventListener("change", () => localStorage.setItem("vcfad-api-key", $("api-key").value.trim()));

function authHeaders() {
  const key = $("api-key").value.trim();
  localStorage.setItem("vcfad-api-key", key);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function problem(response) {
  try {
    const body = await response.json();
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    return `HTTP ${response.status}: ${detail}`;
  } catch {
    return `HTTP ${response.status} ${response.statusText}`;
  }
}

// -- choosing what to detect --------------------------------------------------------------------
function setDetectSource(blob, name) {
  state.detectBlob = blob;
  state.detectName = name;
  $("detect-source").textContent = blob ? `ready: ${name}` : "";
}

$("detect-file").addEventListener("change", () => {
  const file = $("detect-file").files[0];
  setDetectSource(file || null, file ? file.name : "");
});

// MediaRecorder gives WebM/Opus, which the server does not decode: convert it to WAV here.
async function toWav(blob) {
  const context = new AudioContext();
  try {
    const decoded = await context.decodeAudioData(await blob.arrayBuffer());
    const channels = decoded.numberOfChannels;
    const length = decoded.length;
    const mono = new Float32Array(length);
    for (let c = 0; c < channels; c++) {
      const data = decoded.getChannelData(c);
      for (let i = 0; i < length; i++) mono[i] += data[i] / channels;
    }
    return encodeWav(mono, decoded.sampleRate);
  } finally {
    context.close();
  }
}

function encodeWav(samples, sampleRate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

$("record-button").addEventListener("click", async () => {
  $("detect-error").textContent = "";
  if (state.recorder && state.recorder.state === "recording") {
    state.recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    state.chunks = [];
    state.recorder = new MediaRecorder(stream);
    state.recorder.ondataavailable = (event) => { if (event.data.size) state.chunks.push(event.data); };
    state.recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      $("record-button").textContent = "● Record";
      $("record-state").textContent = "converting…";
      try {
        const wav = await toWav(new Blob(state.chunks, { type: state.recorder.mimeType }));
        $("record-audio").src = URL.createObjectURL(wav);
        $("record-audio").hidden = false;
        setDetectSource(wav, "recording.wav");
        $("record-state").textContent = `recorded ${(wav.size / 1024).toFixed(0)} KiB`;
      } catch (error) {
        $("record-state").textContent = "";
        $("detect-error").textContent = `could not read the recording: ${error}`;
      }
    };
    state.recorder.start();
    $("record-button").textContent = "■ Stop";
    $("record-state").textContent = "recording…";
  } catch (error) {
    $("detect-error").textContent = `microphone unavailable: ${error}`;
  }
});

// -- detect -------------------------------------------------------------------------------------
async function detect(blob, name) {
  $("detect-error").textContent = "";
  $("detect-result").hidden = true;
  if (!blob) {
    $("detect-error").textContent = "choose or record a recording first";
    return;
  }
  const form = new FormData();
  form.append("file", blob, name);
  $("detect-button").disabled = true;
  try {
    const response = await fetch("/detect?timeline=true", { method: "POST", headers: authHeaders(), body: form });
    if (!response.ok) {
      $("detect-error").textContent = await problem(response);
      return;
    }
    showVerdict(await response.json(), name);
  } catch (error) {
    $("detect-error").textContent = `request failed: ${error}`;
  } finally {
    $("detect-button").disabled = false;
  }
}

function showVerdict(result, name) {
  $("verdict").textContent = result.label;
  $("verdict").className = result.label;
  $("score").textContent = result.score.toFixed(3);
  $("threshold").textContent = result.threshold.toFixed(3);
  $("model").textContent = result.model;
  const timeline = $("timeline");
  timeline.replaceChildren();
  for (const window of result.timeline || []) {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.style.height = `${Math.max(3, window.score * 100)}%`;
    cell.style.background = window.score >= result.threshold ? "#d92d20" : "#12b76a";
    cell.title = `${window.start_s.toFixed(1)}–${window.end_s.toFixed(1)} s: ${window.score.toFixed(2)}`;
    timeline.appendChild(cell);
  }
  const count = (result.timeline || []).length;
  $("timeline-caption").textContent =
    `${name}: ${result.duration_s.toFixed(1)} s scored; timeline of ${count} windows (red: above threshold)`;
  showWatermark(result);
  $("detect-result").hidden = false;
}

// The vcfad watermark: whether it was found, its payload, and where (a strip over the clip's length).
function showWatermark(result) {
  const mark = result.watermark;
  const strip = $("watermark-strip");
  strip.replaceChildren();
  if (!mark) {
    $("watermark").textContent = "Watermark: not read by this detector.";
    return;
  }
  if (!mark.present) {
    $("watermark").textContent = "Watermark: none found (no vcfad watermark with this deployment's key).";
    return;
  }
  // Without its payload the pattern may have been copied from other clones: the page says so,
  // and the label is the classifier's (the detector's reason explains it).
  const what = mark.payload
    ? `vcfad watermark FOUND (confidence ${mark.confidence.toFixed(6)}, payload ${mark.payload})`
    : `vcfad watermark pattern FOUND, payload unreadable (confidence ${mark.confidence.toFixed(6)})`;
  $("watermark").textContent = `Watermark: ${what} — ${mark.windows.length} window(s). ${result.reason || ""}`;
  const total = Math.max(result.duration_s, 0.001);
  for (const window of mark.windows) {
    const cell = document.createElement("div");
    cell.className = "mark";
    cell.style.left = `${(100 * window.start_s) / total}%`;
    cell.style.width = `${(100 * (window.end_s - window.start_s)) / total}%`;
    cell.title = `watermark at ${window.start_s.toFixed(1)}–${window.end_s.toFixed(1)} s`;
    strip.appendChild(cell);
  }
}

$("detect-button").addEventListener("click", () => detect(state.detectBlob, state.detectName));

// -- clone --------------------------------------------------------------------------------------
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

$("clone-button").addEventListener("click", async () => {
  $("clone-error").textContent = "";
  $("clone-result").hidden = true;
  const files = $("clone-refs").files;
  if (!files.length) {
    $("clone-error").textContent = "choose at least one reference recording";
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("reference", file, file.name);
  form.append("text", $("clone-text").value);
  form.append("match_channel", $("clone-channel").checked ? "true" : "false");
  $("clone-button").disabled = true;
  try {
    const response = await fetch("/clone", { method: "POST", headers: authHeaders(), body: form });
    if (response.status !== 202) {
      $("clone-error").textContent = await problem(response);
      return;
    }
    const job = await response.json();
    await followJob(job.status_url, Number(response.headers.get("Retry-After") || 2));
  } catch (error) {
    $("clone-error").textContent = `request failed: ${error}`;
  } finally {
    $("clone-button").disabled = false;
  }
});

async function followJob(statusUrl, retryAfterS) {
  const progress = $("clone-progress");
  progress.hidden = false;
  progress.value = 0;
  for (;;) {
    const response = await fetch(statusUrl, { headers: authHeaders() });
    if (!response.ok) {
      $("clone-error").textContent = await problem(response);
      return;
    }
    const job = await response.json();
    progress.value = job.progress;
    $("clone-status").textContent = `${job.status}: ${job.stage} (${Math.round(job.progress * 100)}%)`;
    if (job.status === "failed") {
      $("clone-error").textContent = `clone failed: ${job.error}`;
      return;
    }
    if (job.status === "succeeded") {
      await showClone(job);
      return;
    }
    await sleep(Math.min(Math.max(retryAfterS, 0.5), 5) * 1000);
  }
}

async function showClone(job) {
  const response = await fetch(job.audio_url, { headers: authHeaders() });
  if (!response.ok) {
    $("clone-error").textContent = await problem(response);
    return;
  }
  state.cloneBlob = await response.blob();
  const url = URL.createObjectURL(state.cloneBlob);
  $("clone-audio").src = url;
  $("clone-download").href = url;
  $("clone-download").download = `vcfad-clone-${job.job_id}.wav`;
  $("clone-result").hidden = false;
  $("clone-status").textContent = `succeeded: ${job.duration_s.toFixed(1)} s of speech`;
}

$("check-clone").addEventListener("click", () => {
  setDetectSource(state.cloneBlob, "clone.wav");
  $("detect-section").scrollIntoView();
  detect(state.cloneBlob, "clone.wav");
});
