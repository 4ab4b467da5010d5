// The SPIRAL page: start a run, follow its event stream, open past runs. Every piece of data
// (goals, file names, plans, critiques) goes into the page as text (textContent, never innerHTML),
// since goals are typed by people and plans and critiques are written by models.
"use strict";

const $ = (id) => document.getElementById(id);
const NUMBERS = ["max_tries", "max_replans", "max_generations"];
let options = null;
let uploadId = null;
let source = null; // the EventSource of the run this tab follows
let following = null; // {id, clips, maxGenerations, critic, cards: Map(n -> card), ended}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

async function api(path, init = {}) {
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

// --- the form ---------------------------------------------------------------------------------

async function setUp() {
  options = await api("/api/options");
  for (const name of ["method", "planner", "critic"]) {
    for (const choice of options.choices[name]) $(name).append(el("option", { value: choice, text: choice }));
    $(name).value = options.defaults[name];
  }
  for (const name of NUMBERS) {
    const [least, most] = options.ranges[name];
    Object.assign($(name), { min: least, max: most, value: options.defaults[name] });
  }
  $("goal").maxLength = options.goal_chars;
  $("seed").max = options.ranges.scene_seed[1];
  $("seed").addEventListener("input", showScene);
  $("new-scene").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 100000);
    showScene();
  });
  $("start-scene").addEventListener("change", showScene);
  $("start-upload").addEventListener("change", () => uploadId && ($("start-thumb").src = `/api/uploads/${uploadId}.png`));
  $("image").addEventListener("change", upload);
  $("run-form").addEventListener("submit", startRun);
  $("cancel").addEventListener("click", cancelRun);
  $("refresh").addEventListener("click", listRuns);
  showScene();
  listRuns();
  const asked = new URLSearchParams(location.hash.slice(1)).get("run");
  if (asked) follow(asked);
}

function showScene() {
  const seed = $("seed").value;
  if (!/^\d+$/.test(seed) || Number(seed) > options.ranges.scene_seed[1]) {
    $("upload-msg").textContent = `the seed must be a whole number from 0 to ${options.ranges.scene_seed[1]}`;
    return;
  }
  $("start-scene").checked = true;
  $("upload-msg").textContent = "";
  $("start-thumb").src = `/api/scene/${seed}.png`;
}

async function upload() {
  const file = $("image").files[0];
  if (!file) return;
  const say = (text, bad) => {
    $("upload-msg").textContent = `${file.name}: ${text}`;
    $("upload-msg").classList.toggle("error", bad);
  };
  uploadId = null;
  if (file.size > options.upload.bytes) {
    say(`the image is over the ${options.upload.bytes / 2 ** 20} MB limit: resize or compress it`, true);
    return;
  }
  say("uploading...", false);
  try {
    // application/octet-stream whatever the file: the server decides what the bytes are.
    const done = await api("/api/uploads", { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
    uploadId = done.upload;
    $("start-upload").checked = true;
    $("start-thumb").src = done.url;
    say(`${done.width}x${done.height}, accepted`, false);
  } catch (err) {
    say(err.message, true);
  }
}

function number(name) {
  const text = $(name).value.trim();
  return /^-?\d+$/.test(text) ? Number(text) : text === "" ? null : text; // the server says what is wrong
}

async function startRun(event) {
  event.preventDefault();
  $("form-msg").textContent = "";
  const params = { goal: $("goal").value, method: $("method").value, planner: $("planner").value, critic: $("critic").value };
  for (const name of NUMBERS) params[name] = number(name);
  if ($("start-upload").checked) {
    if (!uploadId) {
      $("form-msg").textContent = "upload a PNG or JPEG image first, or pick a tabletop scene";
      return;
    }
    params.upload = uploadId;
  } else {
    params.scene_seed = number("seed");
  }
  try {
    const run = await api("/api/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(params) });
    follow(run.id);
    listRuns();
  } catch (err) {
    $("form-msg").textContent = err.message;
  }
}

async function cancelRun() {
  if (!following) return;
  $("cancel").disabled = true;
  try {
    await api(`/api/runs/${encodeURIComponent(following.id)}/cancel`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  } catch (err) {
    $("state").textContent = err.message;
  }
}

// --- past runs ------------------------------------------------------------------------------

async function listRuns() {
  const { runs } = await api("/api/runs");
  $("runs").replaceChildren(
    ...runs.map((run) => {
      const label = run.kind === "bench" ? `${run.id} — bench report` : `${run.id} — ${run.state} — ${run.goal}`;
      const button = el("button", { type: "button", class: "open-run", "data-id": run.id, text: label });
      button.addEventListener("click", () => (run.kind === "bench" ? openReport(run) : follow(run.id)));
      return el("li", {}, button);
    }),
  );
}

function openReport(run) {
  if (source) source.close();
  following = null;
  clearView(run.id);
  $("view-goal").textContent = "bench run: its report";
  $("report").src = run.report;
  $("report").hidden = false;
}

// --- following a run --------------------------------------------------------------------------

function clearView(id) {
  $("view").hidden = false;
  $("view-title").textContent = `Run ${id}`;
  for (const node of ["view-goal", "view-params", "state", "progress-text", "verdict"]) $(node).textContent = "";
  $("timeline").replaceChildren();
  $("final").hidden = true;
  $("report").hidden = true;
  $("report").removeAttribute("src");
  $("cancel").hidden = true;
  $("progress").value = 0;
}

function follow(id) {
  if (source) source.close();
  clearView(id);
  history.replaceState(null, "", `#run=${encodeURIComponent(id)}`);
  following = { id, clips: 0, maxGenerations: null, critic: false, cards: new Map(), ended: false };
  const run = following;
  source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
  source.onmessage = (message) => run === following && show(JSON.parse(message.data));
  source.onerror = () => {
    if (run === following && !run.ended) $("state").textContent = "connection lost; reconnecting...";
  };
}

function show(event) {
  const handlers = { run: showRun, state: showState, plan: showPlan, clip: showClip, critique: showCritique, end: showEnd };
  handlers[event.type]?.(event);
}

function showRun(event) {
  $("view-goal").textContent = `Goal: ${event.goal}`;
  const p = event.params || {};
  if (p.method) {
    const start = p.upload ? "uploaded image" : `scene ${p.scene_seed}`;
    $("view-params").textContent = `${start} · ${p.method} · planner ${p.planner} · critic ${p.critic} · ` +
      `tries ${p.max_tries}, replans ${p.max_replans}, generations ${p.max_generations}`;
    following.maxGenerations = p.max_generations;
    following.critic = p.method === "closed-loop";
  }
}

function showState(event) {
  const queued = event.position ? `queued (${event.position} run(s) before it)` : "queued (next)";
  $("state").textContent = event.state === "queued" ? queued : event.state;
  $("cancel").hidden = false;
  $("cancel").disabled = false;
}

function showPlan(event) {
  const plan = event.plan;
  const why = event.index === 0 ? "first plan" : event.goal_holds ? "goal check" : `replan — ${event.why}`;
  const card = el("div", { class: "plan" }, el("h3", { text: `Plan ${event.index + 1} (${why}) by ${plan.planner}` }));
  if (event.goal_holds) card.append(el("p", { text: "the planner finds the goal holds: nothing left to do" }));
  if (!plan.feasible) card.append(el("p", { class: "error", text: `infeasible: ${plan.reason}` }));
  card.append(el("ol", {}, ...plan.steps.map((step) => el("li", { text: step.instruction }))));
  card.append(el("details", {}, el("summary", { text: "reasoning" }), el("pre", { text: plan.reasoning })));
  $("timeline").append(card);
}

function showClip(event) {
  let where = event.plan === null ? "one shot" : `plan ${event.plan + 1} · step ${event.step + 1} · try ${event.try + 1}`;
  if (event.candidate) where += ` · candidate ${event.candidate + 1}`;
  const video = event.video
    ? el("video", { src: event.video, controls: "", muted: "", loop: "", autoplay: "", playsinline: "", preload: "auto" })
    : el("p", { class: "error", text: "(the clip's file cannot be read)" });
  video.muted = true; // autoplay needs it as a property too
  const waiting = following.critic && $("state").textContent === "running";
  const verdict = el("div", { class: "verdict quiet", text: waiting ? "critic: waiting..." : "" });
  const body = el("div", {}, el("h3", { text: `Clip ${event.n + 1}: ${where}` }), el("p", { class: "instruction", text: event.instruction }),
    el("p", { class: "quiet", text: `generated in ${Number(event.seconds).toFixed(2)} s, seed ${event.seed}` }), verdict);
  const card = el("div", { class: "attempt", "data-n": event.n }, video, body);
  following.cards.set(event.n, { card, verdict });
  $("timeline").append(card);
  following.clips = event.n + 1;
  progress();
}

function showCritique(event) {
  const shown = following.cards.get(event.n);
  if (!shown) return;
  shown.card.classList.add(event.passed ? "ok" : "bad");
  const lines = [`score ${Number(event.score).toFixed(2)} · ${event.verdict} · ${event.failure_kind}`];
  if (event.feedback) lines.push(`feedback: ${event.feedback}`);
  if (event.refined_instruction) lines.push(`refined instruction: ${event.refined_instruction}`);
  shown.verdict.classList.remove("quiet");
  shown.verdict.replaceChildren(...lines.map((line) => el("div", { text: line })));
}

function progress() {
  const most = following.maxGenerations;
  $("progress").value = most ? Math.min(1, following.clips / most) : 0;
  $("progress-text").textContent = most ? `${following.clips} of at most ${most} clips` : `${following.clips} clips`;
}

function showEnd(event) {
  following.ended = true;
  source.close();
  $("cancel").hidden = true;
  for (const { verdict } of following.cards.values()) if (verdict.textContent === "critic: waiting...") verdict.textContent = "";
  const kept = `${following.clips} clip(s) kept on disk`;
  if (event.state === "finished") {
    $("state").textContent = `finished: ${event.status}${event.error ? ` (${event.error})` : ""}`;
    $("progress").value = 1;
    $("final").hidden = false;
    $("verdict").textContent = event.goal_success === true ? "Goal achieved: yes" : event.goal_success === false
      ? "Goal achieved: no" : `Not judged: ${event.not_judged || "no judge for this goal"}`;
    if (event.video) $("final-video").src = event.video;
    else $("final-video").removeAttribute("src");
    $("viewer-link").hidden = !event.viewer;
    if (event.viewer) $("viewer-link").href = event.viewer;
  } else if (event.state === "cancelled") {
    $("state").textContent = `cancelled (${event.error}); ${kept}`;
  } else {
    $("state").textContent = `${event.state}: ${event.error}; ${kept}`;
  }
  listRuns();
}

document.addEventListener("DOMContentLoaded", setUp);
