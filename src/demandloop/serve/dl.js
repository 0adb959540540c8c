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
  function page() {
    return { url: location.href, path: location.pathname, referrer: d.referrer,
             title: d.title, search: location.search };
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
  var dl = {
    page: function (props) {
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

  /*PERSONALIZE*/
  /*CHAT*/
})(window, document);
