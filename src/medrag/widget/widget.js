/*
 * medrag chat widget. One line on any page:
 *   <script src="https://HOST/widget.js" data-api="https://HOST" defer></script>
 * Options (data-*): api, title, placeholder, position (bottom-right | bottom-left),
 * primary-color, lang (zh | en), open (true to open on load), timeout (seconds of silence before
 * giving up a question), kb (the knowledge base to ask; default: default), token (a read token for
 * a private knowledge base, minted for this page's origin by POST /kbs/{kb}/tokens on the page's server).
 *
 * Everything lives inside one <medrag-chat> element with a shadow root: the page's CSS cannot
 * reach in, and the widget touches nothing outside it. Text from the service (answers, passages,
 * titles) only ever goes into text nodes, never into HTML; links are made only for http(s) URLs.
 * No build step: this file is served as it is.
 */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector("script[src*='widget.js']");
  if (!script || document.querySelector("medrag-chat")) return; // one widget per page

  var TEXT = {
    zh: {
      title: "医学问答助手",
      placeholder: "请输入问题，Enter 发送",
      open: "打开问答助手",
      close: "关闭",
      clear: "新对话",
      send: "发送",
      input: "问题",
      log: "对话记录",
      greeting: "你好！请输入问题。回答摘自文档，每处 [n] 标记都可点开查看原文段落和出处。",
      note: "回答摘自文档，仅供参考，不构成医疗建议。",
      thinking: "正在检索…",
      notFound: "未找到答案",
      source: "来源",
      section: "章节：",
      page: "第 {n} 页",
      passage: "原文段落",
      documentLink: "文档原文",
      quoteLink: "定位原文",
      articleLink: "查看原文",
      copy: "复制",
      copyLabel: "复制回答",
      copied: "已复制",
      copyFailed: "复制失败",
      up: "有帮助",
      down: "没有帮助",
      thanks: "谢谢反馈！",
      feedbackFailed: "反馈未能提交，请稍后再试。",
      timeout: "请求超时（{s} 秒没有回应），请稍后重试。",
      network: "无法连接到问答服务，请检查网络后重试。",
      server: "服务出错：{detail}",
      error: "出错了",
    },
    en: {
      title: "Medical Q&A",
      placeholder: "Ask a question, Enter to send",
      open: "Open the Q&A assistant",
      close: "Close",
      clear: "New chat",
      send: "Send",
      input: "Question",
      log: "Conversation",
      greeting: "Hello! Ask a question. Answers are quoted from the documents; click any [n] mark to see the passage and its source.",
      note: "Answers are quoted from documents, for information only, not medical advice.",
      thinking: "Searching…",
      notFound: "No answer found",
      source: "Source",
      section: "Section: ",
      page: "page {n}",
      passage: "Passage",
      documentLink: "Document",
      quoteLink: "Open at the quote",
      articleLink: "Original article",
      copy: "Copy",
      copyLabel: "Copy the answer",
      copied: "Copied",
      copyFailed: "Copy failed",
      up: "Helpful",
      down: "Not helpful",
      thanks: "Thank you for the feedback!",
      feedbackFailed: "The feedback could not be sent; please try again later.",
      timeout: "No reply for {s} seconds; please try again later.",
      network: "The Q&A service cannot be reached; please check the connection and try again.",
      server: "The service reported an error: {detail}",
      error: "Error",
    },
  };

  // ---- options -------------------------------------------------------------------------------

  var data = script.dataset;
  var scriptUrl = new URL(script.src, location.href);
  var api = httpUrl(data.api || scriptUrl.origin);
  if (!api) {
    console.warn("medrag widget: data-api must be an http(s) URL; using " + scriptUrl.origin);
    api = scriptUrl.origin;
  }
  api = api.replace(/\/+$/, "");
  var lang = /^en/i.test(data.lang || "") ? "en" : "zh";
  var t = TEXT[lang];
  var options = {
    title: data.title || t.title,
    placeholder: data.placeholder || t.placeholder,
    left: /left/i.test(data.position || ""),
    color: data.primaryColor && CSS.supports("color", data.primaryColor) ? data.primaryColor : "#1a73e8",
    open: data.open !== undefined && data.open !== "false",
    timeout: Math.min(Math.max(Number(data.timeout) || 30, 1), 300),
    kb: /^[a-z0-9_-]{1,64}$/.test(data.kb || "") ? data.kb : "default",
    token: data.token || "",
  };
  if (data.kb && options.kb !== data.kb) console.warn("medrag widget: data-kb is not a knowledge base name; using default");
  // Each knowledge base keeps its own conversation.
  var STORE_KEY = "medrag-widget:" + api + (options.kb === "default" ? "" : "#" + options.kb);
  var HISTORY_TURNS = 6;

  // ---- small helpers -------------------------------------------------------------------------

  /** An element with attributes (strings), properties (on*) and children (nodes or text). */
  function h(tag, attributes) {
    var element = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      var value = attributes[name];
      if (value === null || value === undefined || value === false) return;
      if (name.slice(0, 2) === "on") element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return element;
  }

  function icon(path) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var shape = document.createElementNS(ns, "path");
    shape.setAttribute("d", path);
    svg.appendChild(shape);
    return svg;
  }

  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z",
    send: "M3 20.5 21 12 3 3.5 3 10l12 2-12 2z",
    clear: "M12 5V2L7 6l5 4V7a5 5 0 1 1-5 5H5a7 7 0 1 0 7-7z",
  };

  /** The URL if it is an absolute http(s) URL, else null: no javascript:, data: or relative links. */
  function httpUrl(value) {
    try {
      var url = new URL(String(value));
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function load() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
      return saved && Array.isArray(saved.messages) ? saved : { messages: [], open: false };
    } catch (error) { // storage blocked (sandboxed frame, privacy mode): keep the chat in memory only
      return { messages: [], open: false };
    }
  }

  function save() {
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify({ messages: state.messages.slice(-60), open: state.open }));
    } catch (error) { /* as in load() */ }
  }

  // ---- styles --------------------------------------------------------------------------------

  var CSS_TEXT = [
    ":host{all:initial !important;display:block !important;}",
    ".root{--primary:#1a73e8;position:fixed;bottom:20px;right:20px;z-index:2147483000;",
    "  font:14px/1.6 system-ui,-apple-system,'Segoe UI','PingFang SC','Hiragino Sans GB','Microsoft YaHei','Noto Sans CJK SC',sans-serif;",
    "  color:#1f2328;text-align:left;-webkit-text-size-adjust:100%;}",
    ".root.left{right:auto;left:20px;}",
    "*,*::before,*::after{box-sizing:border-box;}",
    "button{font:inherit;color:inherit;cursor:pointer;}",
    "button:disabled{cursor:default;opacity:.5;}",
    ":focus-visible{outline:3px solid var(--primary);outline-offset:2px;}",
    "svg{width:20px;height:20px;fill:currentColor;display:block;}",
    ".sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;}",
    ".launcher{width:56px;height:56px;border-radius:50%;border:0;background:var(--primary);color:#fff;",
    "  display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.25);margin-left:auto;}",
    ".root.left .launcher{margin-left:0;}",
    ".launcher svg{width:26px;height:26px;}",
    ".panel{position:absolute;bottom:68px;right:0;width:380px;height:600px;max-height:calc(100vh - 110px);",
    "  display:flex;flex-direction:column;background:#fff;border-radius:14px;overflow:hidden;",
    "  box-shadow:0 12px 40px rgba(0,0,0,.22);border:1px solid #e3e6ea;}",
    ".root.left .panel{right:auto;left:0;}",
    ".panel[hidden]{display:none;}",
    "header{display:flex;align-items:center;gap:4px;padding:10px 8px 10px 16px;background:var(--primary);color:#fff;}",
    "h2{flex:1;margin:0;font-size:16px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;}",
    ".icon-button{border:0;background:transparent;color:inherit;width:36px;height:36px;border-radius:8px;",
    "  display:flex;align-items:center;justify-content:center;}",
    ".icon-button:hover{background:rgba(255,255,255,.18);}",
    "header :focus-visible{outline-color:#fff;}",
    ".log{flex:1;overflow-y:auto;padding:14px 12px;background:#f6f7f9;overscroll-behavior:contain;}",
    ".msg{display:flex;flex-direction:column;margin:0 0 12px;}",
    ".bubble{max-width:88%;padding:9px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word;}",
    ".user{align-items:flex-end;}",
    ".user .bubble{background:var(--primary);color:#fff;border-bottom-right-radius:4px;}",
    ".bot{align-items:flex-start;}",
    ".bot .bubble{background:#fff;border:1px solid #e3e6ea;border-bottom-left-radius:4px;max-width:94%;}",
    ".bot.pending .answer:empty::before{content:attr(data-waiting);color:#6b7280;}",
    ".bot.pending .answer:not(:empty)::after{content:'▍';color:#9aa4b2;}",
    ".bot.notfound .bubble{background:#fffbeb;border-color:#f4d58d;}",
    ".bot.error .bubble{background:#fef2f2;border-color:#f5b5b5;color:#9b1c1c;}",
    ".tag{display:inline-block;font-size:12px;font-weight:600;color:#8a5a00;margin-bottom:2px;}",
    ".answer{margin:0;}",
    ".badge{display:inline-flex;align-items:center;justify-content:center;min-width:20px;height:18px;padding:0 5px;",
    "  margin:0 2px;border-radius:9px;border:1px solid var(--primary);background:#fff;color:var(--primary);",
    "  font-size:11px;font-weight:700;line-height:1;vertical-align:text-top;}",
    ".badge[aria-expanded=true]{background:var(--primary);color:#fff;}",
    ".cite{margin-top:8px;padding:8px 10px;border-left:3px solid var(--primary);background:#f3f6fb;border-radius:6px;",
    "  white-space:normal;font-size:13px;}",
    ".cite[hidden]{display:none;}",
    ".cite-title{font-weight:600;margin:0 0 2px;}",
    ".cite-section{color:#57606a;margin:0 0 6px;font-size:12px;}",
    ".cite blockquote{margin:0 0 6px;white-space:pre-wrap;max-height:180px;overflow-y:auto;color:#24292f;}",
    "mark{background:#fff0a8;color:inherit;border-radius:2px;}",
    ".cite-links{display:flex;flex-wrap:wrap;gap:4px 12px;margin:0;padding:0;list-style:none;}",
    ".cite a{color:var(--primary);text-decoration:underline;overflow-wrap:anywhere;}",
    ".actions{display:flex;align-items:center;gap:4px;margin-top:4px;font-size:12px;color:#57606a;}",
    ".actions button{border:1px solid #d0d7de;background:#fff;border-radius:14px;padding:1px 9px;min-height:28px;}",
    ".actions button[aria-pressed=true]{border-color:var(--primary);background:#eaf1fd;}",
    ".composer{display:flex;align-items:flex-end;gap:8px;padding:10px 12px;border-top:1px solid #e3e6ea;background:#fff;}",
    "textarea{flex:1;min-height:40px;max-height:120px;resize:none;padding:9px 11px;border:1px solid #c9d1d9;",
    "  border-radius:10px;font:inherit;color:inherit;background:#fff;line-height:1.45;}",
    "textarea:focus{border-color:var(--primary);outline:none;box-shadow:0 0 0 2px rgba(26,115,232,.2);}",
    ".send{width:40px;height:40px;border:0;border-radius:10px;background:var(--primary);color:#fff;",
    "  display:flex;align-items:center;justify-content:center;flex:none;}",
    ".note{margin:0;padding:0 12px 8px;background:#fff;color:#6b7280;font-size:11px;}",
    "@media (max-width:480px){",
    "  .root{right:12px;bottom:12px;}.root.left{left:12px;}",
    "  .panel{position:fixed;top:8px;left:8px;right:8px;bottom:80px;width:auto;height:auto;max-height:none;}",
    "  .root.left .panel{left:8px;right:8px;}",
    "  .bubble{max-width:94%;}",
    "}",
  ].join("\n");

  // ---- the DOM -------------------------------------------------------------------------------

  var host = document.createElement("medrag-chat");
  var shadow = host.attachShadow({ mode: "open" });
  if (shadow.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    var sheet = new CSSStyleSheet(); // not an inline <style>, so a strict style-src CSP still lets it in
    sheet.replaceSync(CSS_TEXT);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    shadow.appendChild(h("style", null, CSS_TEXT));
  }

  var input = h("textarea", { id: "medrag-input", rows: 1, placeholder: options.placeholder });
  var sendButton = h("button", { type: "submit", class: "send", "aria-label": t.send, title: t.send }, icon(ICONS.send));
  var log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": t.log, tabindex: 0 });
  var closeButton = h("button", { type: "button", class: "icon-button", "aria-label": t.close, title: t.close,
    onclick: function () { setOpen(false, true); } }, icon(ICONS.close));
  var clearButton = h("button", { type: "button", class: "icon-button", "aria-label": t.clear, title: t.clear,
    onclick: clearConversation }, icon(ICONS.clear));
  var form = h("form", { class: "composer", onsubmit: function (event) { event.preventDefault(); submit(); } },
    h("label", { class: "sr-only", for: "medrag-input" }, t.input), input, sendButton);
  var panel = h("section", { class: "panel", id: "medrag-panel", role: "dialog", "aria-labelledby": "medrag-title", hidden: true },
    h("header", null, h("h2", { id: "medrag-title" }, options.title), clearButton, closeButton),
    log, form, h("p", { class: "note" }, t.note));
  var launcher = h("button", { type: "button", class: "launcher", "aria-label": t.open, title: options.title,
    "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": "medrag-panel",
    onclick: function () { setOpen(!state.open, true); } }, icon(ICONS.chat));
  var root = h("div", { class: options.left ? "root left" : "root", lang: lang === "zh" ? "zh-CN" : "en" }, panel, launcher);
  root.style.setProperty("--primary", options.color);
  shadow.appendChild(root);

  // ---- state and behaviour -------------------------------------------------------------------

  var state = load();
  var busy = false;
  var composing = false;
  var counter = 0;

  function setOpen(open, moveFocus) {
    state.open = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.replaceChild(icon(open ? ICONS.close : ICONS.chat), launcher.firstChild);
    launcher.setAttribute("aria-label", open ? t.close : t.open);
    save();
    if (open) {
      log.scrollTop = log.scrollHeight;
      if (moveFocus) input.focus();
    } else if (moveFocus) {
      launcher.focus();
    }
  }

  function clearConversation() {
    if (busy) return; // the answer on its way belongs to this conversation
    state.messages = [];
    save();
    renderAll();
    input.focus();
  }

  function renderAll() {
    log.textContent = "";
    if (!state.messages.length) log.appendChild(h("div", { class: "msg bot" }, h("div", { class: "bubble" }, t.greeting)));
    state.messages.forEach(function (message) { log.appendChild(messageView(message)); });
    log.scrollTop = log.scrollHeight;
  }

  function messageView(message) {
    if (message.role === "user") return h("div", { class: "msg user" }, h("div", { class: "bubble" }, message.text));
    var view = h("div", { class: "msg bot" });
    fillBot(view, message);
    return view;
  }

  /** (Re)draw an answer: its text with [n] badges, the citation panels, and the actions. */
  function fillBot(view, message) {
    var id = "m" + ++counter;
    view.textContent = "";
    view.className = "msg bot" + (message.error ? " error" : message.found === false ? " notfound" : "");
    var answer = h("p", { class: "answer" });
    var bubble = h("div", { class: "bubble" });
    view.appendChild(bubble);
    if (message.error) {
      bubble.appendChild(h("span", { class: "sr-only" }, t.error + ": "));
      answer.textContent = message.error;
      bubble.appendChild(answer);
      return;
    }
    if (message.found === false) bubble.appendChild(h("div", { class: "tag" }, "ⓘ " + t.notFound));
    bubble.appendChild(answer);
    var citations = {};
    (message.citations || []).forEach(function (citation) { citations[citation.n] = citation; });
    // Split the text at the [n] markers that have a citation, noting what each passage is quoted for.
    var parts = [];
    var quoted = {};
    var pattern = /\[(\d{1,3})\]/g;
    var text = message.answer || "";
    var last = 0;
    var match;
    while ((match = pattern.exec(text))) {
      var n = Number(match[1]);
      if (!citations[n]) continue;
      var before = text.slice(last, match.index);
      parts.push(before, n);
      (quoted[n] = quoted[n] || []).push(before.trim());
      last = pattern.lastIndex;
    }
    parts.push(text.slice(last));
    var panels = h("div", { class: "cites" });
    var panelFor = {};
    Object.keys(quoted).forEach(function (key) {
      panelFor[key] = panels.appendChild(citationPanel(citations[key], id + "-" + key, quoted[key]));
    });
    parts.forEach(function (part) {
      answer.appendChild(typeof part === "number" ? badge(citations[part], panelFor[part], answer)
        : document.createTextNode(part));
    });
    bubble.appendChild(panels);
    view.appendChild(actions(message));
  }

  /** A [n] button; the same passage may be cited twice, so every badge of a panel shows its state. */
  function badge(citation, citePanel, answer) {
    var button = h("button", { type: "button", class: "badge", "aria-expanded": "false", "aria-controls": citePanel.id,
      "aria-label": t.source + " " + citation.n, title: citation.title }, String(citation.n));
    button.addEventListener("click", function () {
      var open = citePanel.hidden;
      citePanel.hidden = !open;
      answer.querySelectorAll(".badge").forEach(function (other) {
        if (other.getAttribute("aria-controls") === citePanel.id) other.setAttribute("aria-expanded", String(open));
      });
      if (open) (citePanel.querySelector("mark") || citePanel).scrollIntoView({ block: "nearest" });
    });
    return button;
  }

  function citationPanel(citation, id, sentences) {
    var links = h("ul", { class: "cite-links" });
    var seen = {};
    function addLink(url, label) {
      var safe = httpUrl(url);
      if (!safe || seen[safe]) return;
      seen[safe] = true;
      links.appendChild(h("li", null, h("a", { href: safe, target: "_blank", rel: "noopener noreferrer",
        referrerpolicy: "no-referrer" }, label + " · " + new URL(safe).hostname + " ↗")));
    }
    addLink(citation.deep_link, t.quoteLink);
    addLink(citation.url, t.documentLink);
    (citation.source_urls || []).slice(0, 6).forEach(function (url) { addLink(url, t.articleLink); });
    return h("div", { class: "cite", id: id, role: "region", "aria-label": t.source + " " + citation.n, hidden: true },
      h("p", { class: "cite-title" }, "[" + citation.n + "] " + (citation.title || "")),
      citation.section || citation.page ? h("p", { class: "cite-section" },
        [citation.section ? t.section + citation.section : "",
          Number.isInteger(citation.page) ? t.page.replace("{n}", String(citation.page)) : ""]
          .filter(Boolean).join(" · ")) : null,
      passage(String(citation.text || ""), sentences, citation.quote),
      links.childNodes.length ? links : null);
  }

  /** Where the service's quote is in the passage, [start, end) in UTF-16 units, if its offsets hold there. */
  function quoteSpan(text, quote) {
    if (!quote || typeof quote.text !== "string") return null;
    // The service counts characters (code points); JavaScript strings count UTF-16 units.
    var start = unitOffset(text, quote.passage_start);
    var end = unitOffset(text, quote.passage_end);
    if (start < 0 || end <= start) return null;
    return text.slice(start, end) === quote.text ? [start, end] : null;
  }

  function unitOffset(text, points) {
    if (!Number.isInteger(points) || points < 0) return -1;
    var units = 0;
    for (var i = 0; i < points; i++) {
      if (units >= text.length) return -1;
      var code = text.charCodeAt(units);
      units += code >= 0xd800 && code <= 0xdbff && units + 1 < text.length ? 2 : 1;
    }
    return units;
  }

  /** The passage as text, with the service's quote and the sentences the answer quotes from it marked. */
  function passage(text, sentences, quote) {
    var block = h("blockquote", { "aria-label": t.passage });
    var quoted = quoteSpan(text, quote);
    var spans = sentences.map(function (sentence) {
      var at = sentence.length > 1 ? text.indexOf(sentence) : -1;
      return [at, at + sentence.length];
    }).filter(function (span) {
      return span[0] >= 0 && !(quoted && span[0] < quoted[1] && quoted[0] < span[1]); // the quote wins
    });
    if (quoted) spans.push(quoted);
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var position = 0;
    spans.forEach(function (span) {
      if (span[0] < position) return;
      block.appendChild(document.createTextNode(text.slice(position, span[0])));
      block.appendChild(h("mark", { class: span === quoted ? "quote" : null }, text.slice(span[0], span[1])));
      position = span[1];
    });
    block.appendChild(document.createTextNode(text.slice(position)));
    return block;
  }

  function actions(message) {
    var status = h("span", { role: "status" });
    var copyButton = h("button", { type: "button", "aria-label": t.copyLabel, onclick: function () {
      copyText(answerForCopy(message)).then(function () { status.textContent = t.copied; },
        function () { status.textContent = t.copyFailed; });
    } }, t.copy);
    var votes = ["up", "down"].map(function (rating) {
      return h("button", { type: "button", "aria-label": t[rating], title: t[rating], "aria-pressed": String(message.rating === rating),
        disabled: Boolean(message.rating), "data-rating": rating, onclick: function () { rate(message, rating, votes, status); } },
        rating === "up" ? "👍" : "👎");
    });
    return h("div", { class: "actions" }, copyButton, votes[0], votes[1], status);
  }

  /** The answer, then one line per citation: title > section and the first link. */
  function answerForCopy(message) {
    var sources = (message.citations || []).map(function (c) {
      var url = httpUrl(c.url) || (c.source_urls || []).map(httpUrl).filter(Boolean)[0] || "";
      return "[" + c.n + "] " + [c.title, c.section].filter(Boolean).join(" > ") + (url ? " " + url : "");
    });
    return sources.length ? message.answer + "\n\n" + sources.join("\n") : message.answer;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) { // plain-http pages have no Clipboard API
      var area = h("textarea", { class: "sr-only", readonly: true });
      area.value = text;
      root.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
      root.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy refused"));
    });
  }

  function rate(message, rating, votes, status) {
    votes.forEach(function (button) { button.disabled = true; });
    var body = { rating: rating, question: message.question || "", answer: message.answer || "",
      found: message.found === true, chunk_ids: (message.citations || []).map(function (c) { return c.chunk_id; }) };
    fetch(api + "/feedback", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        message.rating = rating;
        save();
        votes.forEach(function (button) { button.setAttribute("aria-pressed", String(button.dataset.rating === rating)); });
        status.textContent = t.thanks;
      })
      .catch(function () {
        votes.forEach(function (button) { button.disabled = false; });
        status.textContent = t.feedbackFailed;
      });
  }

  // ---- asking --------------------------------------------------------------------------------

  /** An error the service explained ({detail, code}); shown to the reader, never retried. */
  function ServiceError(detail, code) {
    this.detail = Array.isArray(detail)
      ? detail.map(function (item) { return item && item.msg ? item.msg : JSON.stringify(item); }).join("; ")
      : String(detail);
    this.code = code;
  }

  /** The streaming endpoint is unusable (missing, blocked, cut off): ask POST /ask instead. */
  function StreamFailed(reason) { this.reason = reason; }

  function post(path, body, signal, accept) {
    var headers = { "Content-Type": "application/json", Accept: accept };
    if (options.token) headers.Authorization = "Bearer " + options.token;
    return fetch(api + path, { method: "POST", signal: signal, headers: headers, body: JSON.stringify(body) });
  }

  /** The last exchanges, so that a follow-up ("它有多少参数？") is understood; failed answers are left out. */
  function history() {
    var turns = [];
    state.messages.forEach(function (m) {
      if (m.role === "user") turns.push({ role: "user", content: m.text });
      else if (!m.error) turns.push({ role: "assistant", content: m.answer || "" });
    });
    return turns.slice(-HISTORY_TURNS);
  }

  async function serviceError(response) {
    var body = null;
    try { body = await response.json(); } catch (error) { /* not JSON: a proxy's error page */ }
    return body && body.detail !== undefined && body.code ? new ServiceError(body.detail, body.code) : null;
  }

  async function askStream(body, signal, onDelta) {
    var response;
    try {
      response = await post("/ask/stream", body, signal, "text/event-stream");
    } catch (error) {
      if (signal.aborted) throw error;
      throw new StreamFailed(error);
    }
    if (!response.ok) {
      var explained = [404, 405, 501].indexOf(response.status) < 0 ? await serviceError(response) : null;
      if (explained) throw explained;
      throw new StreamFailed("HTTP " + response.status);
    }
    if (!/^text\/event-stream/.test(response.headers.get("content-type") || "") || !response.body) {
      throw new StreamFailed("not an event stream");
    }
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal.aborted) throw error;
        throw new StreamFailed(error);
      }
      buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
      var blocks = buffer.replace(/\r\n?/g, "\n").split("\n\n");
      buffer = chunk.done ? "" : blocks.pop();
      for (var i = 0; i < blocks.length; i++) {
        var event = parseEvent(blocks[i]);
        if (!event) continue;
        if (event.name === "delta") onDelta(String(event.data.text || ""));
        else if (event.name === "done") { reader.cancel().catch(function () {}); return event.data; }
        else if (event.name === "error") throw new ServiceError(event.data.detail, event.data.code);
      }
      if (chunk.done) throw new StreamFailed("the stream ended without an answer");
    }
  }

  function parseEvent(block) {
    var name = "message";
    var lines = [];
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) lines.push(line.slice(5).replace(/^ /, ""));
    });
    if (!lines.length) return null;
    try {
      return { name: name, data: JSON.parse(lines.join("\n")) };
    } catch (error) {
      throw new StreamFailed("bad event data");
    }
  }

  async function askPlain(body, signal) {
    var response = await post("/ask", body, signal, "application/json");
    if (!response.ok) throw (await serviceError(response)) || new ServiceError("HTTP " + response.status, "http_" + response.status);
    return response.json();
  }

  async function submit() {
    var question = input.value.trim();
    if (!question || busy) return;
    busy = true;
    sendButton.disabled = true;
    input.value = "";
    autosize();
    if (log.firstChild && !state.messages.length) log.textContent = ""; // the greeting
    var body = { question: question, history: history(), kb: options.kb };
    state.messages.push({ role: "user", text: question });
    save();
    log.appendChild(messageView(state.messages[state.messages.length - 1]));

    var view = h("div", { class: "msg bot pending", "aria-busy": "true" },
      h("div", { class: "bubble" }, h("p", { class: "answer", "data-waiting": t.thinking })));
    var live = view.querySelector(".answer");
    log.appendChild(view);
    log.scrollTop = log.scrollHeight;

    var controller = new AbortController();
    var timedOut = false;
    var timer;
    // The clock restarts with each piece of a streamed answer: a long answer that keeps coming is
    // fine, a silence of `timeout` seconds is not.
    function wait() {
      clearTimeout(timer);
      timer = setTimeout(function () { timedOut = true; controller.abort(); }, options.timeout * 1000);
    }
    wait();
    var message = { role: "bot", question: question };
    try {
      var result;
      try {
        result = await askStream(body, controller.signal, function (text) {
          wait();
          live.textContent += text;
          log.scrollTop = log.scrollHeight;
        });
      } catch (error) {
        if (!(error instanceof StreamFailed)) throw error;
        live.textContent = "";
        result = await askPlain(body, controller.signal);
      }
      message.answer = String(result.answer || "");
      message.found = result.found === true;
      message.citations = Array.isArray(result.citations) ? result.citations : [];
    } catch (error) {
      message.error = timedOut ? format(t.timeout, { s: options.timeout })
        : error instanceof ServiceError ? format(t.server, { detail: error.detail })
        : t.network;
    } finally {
      clearTimeout(timer);
    }
    state.messages.push(message);
    save();
    view.removeAttribute("aria-busy");
    fillBot(view, message);
    log.scrollTop = log.scrollHeight;
    busy = false;
    sendButton.disabled = false;
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  input.addEventListener("input", autosize);
  input.addEventListener("compositionstart", function () { composing = true; });
  // Some browsers send the Enter that ends a composition just after compositionend.
  input.addEventListener("compositionend", function () { setTimeout(function () { composing = false; }, 0); });
  input.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey) return;
    if (event.isComposing || event.keyCode === 229 || composing) return; // the IME's Enter picks a word
    event.preventDefault();
    submit();
  });
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") setOpen(false, true);
  });

  renderAll();
  setOpen(options.open || state.open, false);
  if (document.body) document.body.appendChild(host);
  else document.addEventListener("DOMContentLoaded", function () { document.body.appendChild(host); });
})();
