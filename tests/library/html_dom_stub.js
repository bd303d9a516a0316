// A minimal DOM stand-in for running index.html's script under node: only the
// calls the page makes. Prints what the page showed and played, as JSON.
// Usage: node html_dom_stub.js index.html [file:|http:] [#entry=…&lang=… the page opens with]
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const dataText = html.match(/<script type="application\/json" id="library-data">([\s\S]*?)<\/script>/)[1];
const script = html.match(/<script>\n([\s\S]*?)<\/script>/)[1];
class El {
  constructor(tag, id) { this.tagName = tag; this.id = id; this.children = []; this.attrs = {}; this.listeners = {};
    this.textContent = ""; this.value = ""; this.hidden = false; this.track = { mode: "disabled" }; this.dataset = {}; }
  appendChild(c) { this.children.push(c); c.parent = this; return c; }
  replaceChildren() { this.children = []; }
  remove() { if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== this); }
  setAttribute(k, v) { this.attrs[k] = v; } removeAttribute(k) { delete this.attrs[k]; }
  addEventListener(t, f) { this.listeners[t] = f; }
  all(pred) { let out = []; for (const c of this.children) { if (pred(c)) out.push(c); out = out.concat(c.all(pred)); } return out; }
  querySelectorAll(sel) { const tag = sel.split("[")[0]; return this.all((c) => c.tagName === tag && (!sel.includes("[") || "aria-current" in c.attrs)); }
  pause() {} load() { this.loaded = true; } play() { return Promise.reject(new Error("autoplay")); }
}
const ids = {};
for (const id of ["search", "department", "language", "results", "video", "empty", "summary", "now-question", "now-answer", "now-duration", "now-link", "generated"]) ids[id] = new El(id === "video" ? "video" : "x", id);
ids["library-data"] = { textContent: dataText };
global.document = { getElementById: (id) => ids[id], createElement: (tag) => new El(tag) };
const windowListeners = {};
global.window = { location: { protocol: process.argv[3] || "file:", hash: process.argv[4] || "" },
  addEventListener: (t, f) => { windowListeners[t] = f; } };
global.history = { replaceState: (state, title, url) => { window.location.hash = url; } };
global.URL = { createObjectURL: () => "blob:1", revokeObjectURL: () => {} };
global.Blob = class { constructor(parts) { this.parts = parts; } };
eval(script);
const out = { summary: ids.summary.textContent, options: ids.department.children.map((c) => c.textContent) };
const buttons = ids.results.all((c) => c.tagName === "button");
out.opened = { heading: ids["now-question"].textContent, hash: window.location.hash };
out.rows = buttons.map((b) => [b.children[0].src, b.children[1].children[1].textContent]);
buttons[1].listeners.click();
const track = ids.video.children[0];
out.played = { src: ids.video.src, poster: ids.video.poster, track: track && [track.kind, track.srclang, track.src, track.default, track.track.mode],
  heading: ids["now-question"].textContent, lang: ids["now-question"].lang, current: buttons[1].attrs["aria-current"],
  hash: window.location.hash, link: ids["now-link"].href, duration: ids["now-duration"].textContent };
window.location.hash = "#entry=hours&lang=en"; windowListeners.hashchange();
out.afterHashChange = { heading: ids["now-question"].textContent, current: buttons[0].attrs["aria-current"] };
ids.search.value = "nine"; ids.search.listeners.input();
out.afterSearch = ids.summary.textContent;
ids.search.value = ""; ids.language.value = "zh"; ids.language.listeners.input();
out.afterLanguage = ids.summary.textContent;
console.log(JSON.stringify(out));
