/* demandloop browser snippet: page views, identify on form submit, first-party anonymous id.
   <script async src="https://COLLECTOR/dl.js?k=WRITE_KEY"></script>   then dl.track(...)
   Consent: dl.consent("granted" | "denied"); until granted (when the default is "denied")
   nothing is sent and no cookie but the choice itself is set.
   With experiences configured it also personalises the page (dl_personalize.js); with
   chat enabled, a page whose tag has data-chat="on" gets the chat widget (dl_chat.js). */
(function (w, d) {
  var cfg = __CONFIG__;
  var s = d.currentScript, src = s && s.src ? new URL(s.src) : null;
  var key = (s && s.getAttribute("data-write-key")) || (src && src.searchParams.get("k"));
  var api = (s && s.getAttribute("data-api")) || (src ? src.origin : "");
  var n = w.navigator, noop = function () {};
  if (!key || (cfg.respectPrivacy && (n.doNotTrack === "1" || w.doNotTrack === "1" ||
      n.globalPrivacyControl === true))) {
    w.dl = { page: noop, track: noop, identify: noop, consent: noop };
    return;
  }
  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 3) | 8).toString(16);
    });
  }
  function cookie(name, value) {
    if (value === undefined) {
      var m = d.cookie.match("(?:^|; )" + name + "=([^;]*)");
      return m ? decodeURIComponent(m[1]) : null;
    }
    d.cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=" +
      cfg.cookieDays * 86400 + "; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");
  }
  function forget(name) {
    d.cookie = name + "=; path=/; max-age=0; SameSite=Lax";
  }
  var granted = (cookie("dl_consent") || cfg.consentDefault) === "granted";
  var anon = null, uid = null;
  function start() {
    anon = cookie("dl_aid") || uuid(); uid = cookie("dl_uid");
    cookie("dl_aid", anon);
  }
  if (granted) start();
  function campaign() {
    var p = new URLSearchParams(location.search), c = {};
    ["source", "medium", "term", "content"].forEach(function (k) {
      var v = p.get("utm_" + k); if (v) c[k] = v;
    });
    if (p.get("utm_campaign")) c.name = p.get("utm_campaign");
    return c;
  }
  // the page before, for a view a client-side navigation makes (d.referrer stays the
  // site's entry referrer for the whole visit: every in-app page read as a new arrival)
  var from = null;
  function page() {
    return { url: location.href, path: location.pathname,
             referrer: from === null ? d.referrer : from, title: d.title,
             search: location.search };
  }
  function send(path, msg) {
    if (!granted) return;
    var now = new Date().toISOString();
    msg.anonymousId = anon; if (uid) msg.userId = uid;
    msg.messageId = uuid(); msg.timestamp = now; msg.sentAt = now; msg.writeKey = key;
    msg.context = { page: page(), campaign: campaign(), userAgent: n.userAgent,
                    locale: n.language, library: { name: "demandloop.js", version: "1" } };
    var body = JSON.stringify(msg);
    if (w.fetch) {
      return w.fetch(api + path, { method: "POST", body: body, keepalive: true,
        credentials: "omit", headers: { "Content-Type": "text/plain" } }).catch(noop);
    }
    if (n.sendBeacon) n.sendBeacon(api + path, body);
  }
  // the address of the last page view (without its #fragment), when, and whether dl.js
  // sent it on a navigation: a site's own dl.page() for that navigation is then one view
  var viewed = null, viewedAt = 0, auto = false;
  function here() { return location.href.split("#")[0]; }
  var dl = {
    page: function (props) {
      if (!props && auto && viewed === here() && Date.now() - viewedAt < 2000) return;
      if (viewed !== null && viewed !== here()) from = viewed;  // moved within the page
      viewed = here(); viewedAt = Date.now(); auto = false;
      var p = page(); for (var k in props || {}) p[k] = props[k];
      return send("/v1/p", { type: "page", properties: p });
    },
    track: function (event, props) {
      return send("/v1/t", { type: "track", event: event, properties: props || {} });
    },
    identify: function (userId, traits) {
      if (!granted) return;
      if (userId) { uid = String(userId); cookie("dl_uid", uid); }
      return send("/v1/i", { type: "identify", traits: traits || {} });
    },
    consent: function (state) {
      var now = state === "granted";
      cookie("dl_consent", now ? "granted" : "denied");
      if (now && !granted) { granted = true; start(); dl.page(); }
      if (!now) { granted = false; forget("dl_aid"); forget("dl_uid"); anon = uid = null; }
    }
  };
  w.dl = dl;
  if (cfg.personalize) personalize(cfg.personalize);  // see dl_personalize.js
  // chat is opt-in per site: the page's script tag asks for it (see dl_chat.js)
  if (cfg.chat && ((s && s.getAttribute("data-chat") === "on") ||
                   (src && src.searchParams.get("chat") === "1"))) chatWidget(cfg.chat);
  if (cfg.identifyForms) {
    d.addEventListener("submit", function (e) {
      var f = e.target;
      if (!f || !f.matches || !f.matches(cfg.identifyForms)) return;
      var email = f.querySelector("input[type=email], input[name=email]");
      if (!email || email.value.indexOf("@") < 1) return;
      var traits = { email: email.value.trim().toLowerCase() };
      // only fields the site chose: listed in collector.form_fields or marked in the page
      var fields = f.querySelectorAll("input, select, textarea");
      for (var i = 0; i < fields.length; i++) {
        var el = fields[i], name = el.getAttribute("name");
        if (!name || !el.value || el === email || el.type === "password") continue;
        // a radio's or checkbox's value is its option's, chosen or not
        if ((el.type === "radio" || el.type === "checkbox") && !el.checked) continue;
        if (cfg.formFields.indexOf(name) >= 0 || el.hasAttribute("data-dl-capture")) {
          traits[name] = el.value;
        }
      }
      dl.identify(null, traits);
    }, true);
  }
  dl.page();
  /* A single-page app moves with history.pushState (and the back button), not page loads:
     each new address is a page view (its referrer the page before) and, with experiences,
     decided again for its URL, as GA4's history-change page views and Mutiny do. */
  function navigated() {
    var now = here();
    if (now === viewed) return;  // a #fragment, or the site's own dl.page() came first
    dl.page(); auto = true;
    if (cfg.personalize) personalize(cfg.personalize);
  }
  if (w.history && w.history.pushState) {
    ["pushState", "replaceState"].forEach(function (name) {
      var original = w.history[name];
      w.history[name] = function () {
        var result = original.apply(this, arguments);
        // after the app's own handlers, which set the new title
        setTimeout(navigated, 0);
        return result;
      };
    });
    w.addEventListener("popstate", function () { setTimeout(navigated, 0); });
  }

  /*PERSONALIZE*/
  /*CHAT*/
})(window, document);
