/* dl.js's chat widget, added into dl.js (at its CHAT marker) only when the workspace has
   chat.enabled; a page shows it only when its script tag opts in (data-chat="on" or ?chat=1
   in the script's URL). Text is always set as text (never as HTML); links only http(s). */
  function chatWidget(c) {
    var root, log, form, input, sid = null, busy = false;
    function el(tag, cls, text) {
      var e = d.createElement(tag);
      if (cls) e.className = cls;
      if (text !== undefined) e.textContent = text;
      return e;
    }
    function say(who, text) {
      var m = el("div", "dl-msg dl-" + who, text);
      log.appendChild(m); log.scrollTop = log.scrollHeight;
      return m;
    }
    function post(path, body) {
      body.writeKey = key;
      return w.fetch(api + path, { method: "POST", credentials: "omit",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    }
    function zone() {
      try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; }
      catch (e) { return "UTC"; }
    }
    function buttons(list, onPick, cls) {
      var box = el("div", "dl-choices " + (cls || ""));
      list.forEach(function (item) {
        var b = el("button", "dl-choice", item.label);
        b.type = "button";
        b.onclick = function () { box.parentNode && box.parentNode.removeChild(box); onPick(item); };
        box.appendChild(b);
      });
      log.appendChild(box); log.scrollTop = log.scrollHeight;
      return box;
    }
    function step(next) {
      if (!next || next.kind === "none") return;
      if (next.kind === "question") {
        say("bot", next.ask);
        if (next.options && next.options.length) {
          buttons(next.options.map(function (o) { return { label: o, value: o }; }),
                  function (o) { answer(next.trait, o.value); });
        } else {
          form.dataset.trait = next.trait;
        }
        return;
      }
      if (next.kind === "meeting") {
        buttons([{ label: c.bookLabel }], function () { slots(); }, "dl-book");
      }
    }
    function answer(trait, value) {
      say("visitor", value);
      post("/v1/chat/sessions/" + sid + "/answers", { trait: trait, value: value })
        .then(function (r) { return r.json(); })
        .then(function (j) { if (j.next) step(j.next); else if (j.error) say("bot", j.error.message); });
    }
    function slots() {
      w.fetch(api + "/v1/chat/sessions/" + sid + "/slots?k=" + encodeURIComponent(key) +
              "&tz=" + encodeURIComponent(zone()), { credentials: "omit" })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          if (!j.slots || !j.slots.length) { say("bot", c.noSlots); return; }
          say("bot", c.pickSlot);
          buttons(j.slots.slice(0, 12).map(function (s) {
            return { label: s.day + " " + s.time, start: s.start };
          }), function (s) { details(s); }, "dl-slots");
        });
    }
    function details(slot) {
      say("visitor", slot.label);
      var f = el("form", "dl-details");
      var email = el("input"); email.type = "email"; email.required = true;
      email.placeholder = "you@company.com"; email.name = "email";
      var name = el("input"); name.placeholder = "Your name"; name.name = "name";
      var go = el("button", "dl-choice", c.confirmLabel); go.type = "submit";
      f.appendChild(email); f.appendChild(name); f.appendChild(go);
      f.onsubmit = function (e) {
        e.preventDefault();
        go.disabled = true;
        post("/v1/chat/sessions/" + sid + "/bookings", { start: slot.start,
          email: email.value.trim(), name: name.value.trim(), timezone: zone() })
          .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
          .then(function (res) {
            f.parentNode && f.parentNode.removeChild(f);
            if (res[0] === 201) {
              say("bot", c.booked.replace("{rep}", res[1].rep).replace("{when}", slot.label));
            } else {
              say("bot", res[1].error ? res[1].error.message : "Not booked.");
              if (res[0] === 409) slots();
            }
          });
      };
      log.appendChild(f); email.focus();
    }
    function cite(box, citations) {
      (citations || []).forEach(function (ci) {
        if (!/^https?:\/\//i.test(ci.url)) return;
        var a = el("a", "dl-cite", ci.title + (ci.heading ? " - " + ci.heading : ""));
        a.href = ci.url; a.target = "_blank"; a.rel = "noopener";
        box.appendChild(a);
      });
    }
    function ask(text) {
      if (busy || !sid) return;
      busy = true;
      say("visitor", text);
      var bubble = say("bot", ""), got = "";
      post("/v1/chat/sessions/" + sid + "/messages", { text: text }).then(function (r) {
        if (!r.ok || !r.body) {
          return r.json().then(function (j) { bubble.textContent = j.error ? j.error.message : "?"; });
        }
        var reader = r.body.getReader(), dec = new TextDecoder(), buf = "", name = "";
        function handle(ev, data) {
          if (ev === "token") { got += data.text; bubble.textContent = got; }
          else if (ev === "reset") { got = ""; bubble.textContent = ""; }
          else if (ev === "answer") {
            bubble.textContent = data.text; cite(bubble, data.citations);
            bubble.setAttribute("data-known", data.known ? "true" : "false");
          } else if (ev === "next") step(data);
        }
        function pump() {
          return reader.read().then(function (res) {
            if (res.done) return;
            buf += dec.decode(res.value, { stream: true });
            var lines = buf.split(/\r?\n/); buf = lines.pop();
            lines.forEach(function (line) {
              if (line.indexOf("event:") === 0) name = line.slice(6).trim();
              else if (line.indexOf("data:") === 0) handle(name, JSON.parse(line.slice(5)));
            });
            return pump();
          });
        }
        return pump();
      }).catch(function () { bubble.textContent = c.offline; })
        .then(function () { busy = false; });
    }
    var opening = null;
    function open() {
      root.classList.add("dl-open");
      if (opening) return opening;
      opening = post("/v1/chat/sessions", { anonymousId: anon, url: location.href,
                                            referrer: d.referrer })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          if (!j.session) { opening = null; say("bot", j.error ? j.error.message : c.offline); return; }
          sid = j.session; say("bot", j.greeting); step(j.next);
        }).catch(function () { opening = null; say("bot", c.offline); });
      return opening;
    }
    var css = el("style");
    css.textContent = "#dl-chat{position:fixed;right:16px;bottom:16px;z-index:2147483000;" +
      "font:14px/1.4 system-ui,sans-serif}#dl-chat .dl-panel{display:none;width:320px;" +
      "height:420px;background:#fff;border:1px solid #ccc;border-radius:8px;flex-direction:" +
      "column;box-shadow:0 4px 16px rgba(0,0,0,.15)}#dl-chat.dl-open .dl-panel{display:flex}" +
      "#dl-chat.dl-open .dl-launch{display:none}#dl-chat .dl-log{flex:1;overflow:auto;" +
      "padding:8px}#dl-chat .dl-msg{margin:4px 0;padding:6px 8px;border-radius:6px;" +
      "white-space:pre-wrap}#dl-chat .dl-bot{background:#f1f3f5}#dl-chat .dl-visitor{" +
      "background:#e7f0ff;text-align:right}#dl-chat .dl-cite{display:block;font-size:12px}" +
      "#dl-chat form{display:flex;gap:4px;padding:8px;border-top:1px solid #eee}" +
      "#dl-chat input{flex:1;min-width:0}#dl-chat .dl-details{flex-wrap:wrap}" +
      "#dl-chat .dl-choice{margin:2px}#dl-chat .dl-head{display:flex;justify-content:" +
      "space-between;align-items:center;padding:6px 8px;border-bottom:1px solid #eee}" +
      "#dl-chat .dl-close{border:0;background:none;font-size:18px;cursor:pointer}";
    root = el("div"); root.id = "dl-chat";
    var launch = el("button", "dl-launch", c.launcher); launch.type = "button";
    launch.onclick = open;
    var panel = el("div", "dl-panel");
    var head = el("div", "dl-head", c.title);
    // (the panel covers a phone's screen: it must close; the conversation stays)
    var close = el("button", "dl-close", "\u00d7"); close.type = "button";
    close.setAttribute("aria-label", "Close"); close.title = "Close";
    close.onclick = function () { root.classList.remove("dl-open"); launch.focus(); };
    head.appendChild(close);
    log = el("div", "dl-log");
    form = el("form", "dl-ask");
    input = el("input"); input.name = "q"; input.placeholder = c.placeholder;
    input.maxLength = 1000;
    var send = el("button", "", c.sendLabel); send.type = "submit";
    form.appendChild(input); form.appendChild(send);
    form.onsubmit = function (e) {
      e.preventDefault();
      var text = input.value.trim(); if (!text) return;
      input.value = "";
      if (form.dataset.trait) { var t = form.dataset.trait; delete form.dataset.trait; answer(t, text); }
      else ask(text);
    };
    panel.appendChild(head); panel.appendChild(log); panel.appendChild(form);
    root.appendChild(launch); root.appendChild(panel);
    function mount() { d.head.appendChild(css); d.body.appendChild(root); }
    if (d.body) mount(); else d.addEventListener("DOMContentLoaded", mount);
    dl.chat = { open: open, ask: function (t) { return open().then(function () { ask(t); }); } };
  }
