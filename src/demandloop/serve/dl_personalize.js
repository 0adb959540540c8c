/* dl.js's personalisation, added into dl.js (at its PERSONALIZE marker) only when the
   workspace has experiences: sites without them load the small snippet. */
  /* Personalisation: hide only what experiences change, ask /v1/decide, apply, reveal.
     Without an answer within p.timeoutMs the original shows and a late answer is ignored
     (no flicker). Without consent: decided by account only (no anonymous id is sent). */
  /* personalize.gen: which call is the page's current one (a client-side navigation makes
     a new one, whose decision alone applies); personalize.watching: the elements the
     current one waits for. Kept on the function, which is hoisted: dl.js calls it before
     a variable declared here would be set. */
  function personalize(p) {
    var style = null, done = false, mine = personalize.gen = (personalize.gen || 0) + 1;
    if (personalize.watching) {  // the page before's changes
      personalize.watching.disconnect();
      personalize.watching = null;
    }
    var left = d.getElementById("dl-pending");
    if (left && left.parentNode) left.parentNode.removeChild(left);
    if (p.hide && p.hide.length) {
      style = d.createElement("style");
      style.id = "dl-prehide";
      style.textContent = p.hide.join(",") + "{visibility:hidden !important}";
      (d.head || d.documentElement).appendChild(style);
    }
    function reveal() {
      if (style && style.parentNode) style.parentNode.removeChild(style);
      style = null;
    }
    var timer = setTimeout(function () { done = true; reveal(); }, p.timeoutMs);
    function safe(url) {
      var v = String(url).trim().toLowerCase();
      if (v.indexOf("//") === 0) return false;
      if (/^[/?#]/.test(v)) return true;
      return /^(https?:|mailto:|tel:)/.test(v) || v.split("/")[0].indexOf(":") < 0;
    }
    function apply(c) {
      if (c.action === "redirect") {
        // compared as the address it leads to: a path ("/landing?x=1") never equals the
        // page's whole href, and a page its own audience matches reloaded itself for ever
        var to = null;
        try { to = new URL(c.value, location.href).href; } catch (e) { to = null; }
        if (!to || !safe(c.value) || to === location.href) return false;  // (already there)
        location.replace(to);
        return true;
      }
      var els = d.querySelectorAll(c.selector);
      if (!els.length) return null;  // not on the page yet (see later())
      for (var i = 0; i < els.length; i++) {
        var el = els[i];
        if (c.action === "text") el.textContent = c.value;
        else if (c.action === "html") el.innerHTML = c.value;
        else if (c.action === "hide") el.style.setProperty("display", "none", "important");
        else if (c.action === "attribute") {
          if ((c.attribute === "href" || c.attribute === "src") && !safe(c.value)) continue;
          if (/^on/i.test(c.attribute)) continue;
          el.setAttribute(c.attribute, c.value);
        }
      }
      return false;
    }
    /* Changes whose elements are not on the page yet (an app that renders after the
       page loads, or after a client-side navigation) wait for them for p.waitMs, still
       hidden, and are applied as they appear: applied to nothing, they were lost and the
       original showed. */
    function later(pending) {
      var wait = d.createElement("style");
      wait.id = "dl-pending";
      (d.head || d.documentElement).appendChild(wait);
      function hideLeft() {
        var css = pending.length ? pending.map(function (c) { return c.selector; })
          .join(",") + "{visibility:hidden !important}" : "";
        // (only when it changes: writing it is itself a mutation this observer sees)
        if (wait.textContent !== css) wait.textContent = css;
      }
      function stop() {
        if (personalize.watching) {
          personalize.watching.disconnect();
          personalize.watching = null;
        }
        if (wait.parentNode) wait.parentNode.removeChild(wait);
      }
      function look() {
        if (mine !== personalize.gen) return stop();
        pending = pending.filter(function (c) {
          try { return apply(c) === null; } catch (e) { return false; }
        });
        hideLeft();
        if (!pending.length) stop();
      }
      hideLeft();
      if (!w.MutationObserver) return stop();
      personalize.watching = new MutationObserver(look);
      personalize.watching.observe(d.documentElement, { childList: true, subtree: true });
      setTimeout(function () { if (mine === personalize.gen) stop(); }, p.waitMs || 5000);
    }
    function show(decisions) {
      if (done || mine !== personalize.gen) return;
      done = true; clearTimeout(timer);
      var moved = false, pending = [];
      for (var i = 0; i < decisions.length; i++) {
        var changes = decisions[i].changes || [];
        for (var j = 0; j < changes.length; j++) {
          // one change the page cannot take (a selector its browser refuses) must not
          // stop the others, nor leave the targets hidden
          try {
            var r = apply(changes[j]);
            if (r === null) pending.push(changes[j]);
            moved = r === true || moved;
          } catch (e) { /* skipped */ }
        }
      }
      dl.decisions = decisions;
      if (moved) return;  // the page is going away: keep the targets hidden
      if (pending.length) later(pending);
      reveal();
      for (var k = 0; k < decisions.length; k++) {
        dl.track("Experience Viewed", { experience: decisions[k].experience,
          variant: decisions[k].variant, control: decisions[k].control });
      }
    }
    var q = "?k=" + encodeURIComponent(key) + "&url=" + encodeURIComponent(location.href) +
      "&ref=" + encodeURIComponent(d.referrer || "") +
      (granted && anon ? "&aid=" + encodeURIComponent(anon) : "");
    if (!w.fetch) { done = true; reveal(); return; }
    w.fetch(api + "/v1/decide" + q, { credentials: "omit" }).then(function (r) {
      return r.ok ? r.json() : { decisions: [] };
    }).then(function (body) {
      var decisions = (body && body.decisions) || [];
      if (d.readyState === "loading") {
        d.addEventListener("DOMContentLoaded", function () { show(decisions); });
      } else show(decisions);
    }).catch(function () { if (!done) { done = true; clearTimeout(timer); reveal(); } });
  }
