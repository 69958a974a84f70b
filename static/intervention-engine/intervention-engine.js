/*
 * Intervention Engine browser client — dependency-free, no build step.
 *
 *   const connection = InterventionEngine.connect({
 *     url: "wss://engine.example.com/ws",          // default: same host, /ws
 *     getTicket: async () => (await fetch("/my-backend/ws-ticket", {method: "POST"})).json()
 *                                 .then(r => r.ticket),  // a fresh ticket for every (re)connection
 *     onIntervention: (frame) => {},                 // optional: called for every new intervention
 *     render: true,                                  // optional: false to render it yourself
 *     storageKey: "shopper-42",                      // optional: separates shoppers sharing a tab
 *   });
 *   connection.close();
 *
 * Protocol (docs/websocket.md): on open the client sends {"type":"resume","last_seq":n} with the last
 * seq it saw (sessionStorage), acks every intervention it receives, reports displayed / clicked /
 * dismissed, and pings every 25 s to stay "online". It reconnects with exponential backoff and full
 * jitter, asking getTicket for a new single-use ticket each time. Content is inserted as text only.
 */
(function (global) {
  "use strict";

  var PING_MS = 25000;
  var BACKOFF_BASE_MS = 500;
  // A refused handshake (bad ticket or Origin) reaches a browser as a plain 1006 close, so every close
  // is retried, with a fresh ticket, no faster than this backoff allows.
  var BACKOFF_MAX_MS = 30000;
  // A frame after a hole in the sequence is held until the answer to a resume ("replayed") says the
  // hole is filled or will never be (acked in another tab, expired). Meanwhile the resume is sent again
  // this often, in case its answer was lost.
  var HOLD_MS = 3000;

  function storageGet(key, fallback) {
    try {
      var raw = global.sessionStorage.getItem(key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }

  function storageSet(key, value) {
    try {
      global.sessionStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* private mode or quota: resume falls back to last_seq 0, the server still de-duplicates */
    }
  }

  function defaultUrl() {
    var scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + global.location.host + "/ws";
  }

  function safeHref(url) {
    if (!url) return null;
    try {
      var parsed = new URL(url, global.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function Connection(options) {
    if (!options || typeof options.getTicket !== "function") {
      throw new Error("InterventionEngine.connect needs getTicket: async () => ticket");
    }
    this.options = options;
    this.url = options.url || defaultUrl();
    this.render = options.render !== false;
    var prefix = "interventionEngine:" + (options.storageKey || "default") + ":";
    this.seqKey = prefix + "lastSeq";
    this.seenKey = prefix + "seen";
    this.lastSeq = storageGet(this.seqKey, 0);
    this.seen = storageGet(this.seenKey, []);
    this.attempt = 0;
    this.closed = false;
    this.socket = null;
    this.pingTimer = null;
    this.retryTimer = null;
    this.queue = [];
    this.held = [];
    this.holdTimer = null;
    this.showing = null;
    this.status = "idle";
    this.open();
  }

  Connection.prototype.setStatus = function (status) {
    this.status = status;
    if (typeof this.options.onStatus === "function") this.options.onStatus(status);
  };

  Connection.prototype.open = async function () {
    if (this.closed) return;
    this.setStatus("connecting");
    var ticket;
    try {
      ticket = await this.options.getTicket();
      if (ticket && typeof ticket === "object") ticket = ticket.ticket;
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    if (this.closed) return;
    var socket = new WebSocket(this.url + "?ticket=" + encodeURIComponent(ticket));
    this.socket = socket;
    var self = this;
    socket.onopen = function () {
      self.attempt = 0;
      self.setStatus("open");
      self.send({ type: "resume", last_seq: self.lastSeq });
      // Frames held for a hole wait for this resume's replay (the timer stopped with the old socket).
      if (self.held.length) self.holdFor();
      self.pingTimer = global.setInterval(function () {
        self.send({ type: "ping" });
      }, PING_MS);
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      self.handle(frame);
    };
    socket.onclose = function () {
      global.clearInterval(self.pingTimer);
      global.clearTimeout(self.holdTimer);
      if (self.socket === socket) self.socket = null;
      self.setStatus("closed");
      if (!self.closed) self.scheduleReconnect();
    };
  };

  Connection.prototype.scheduleReconnect = function () {
    if (this.closed) return;
    // Full jitter: a fleet of tabs reconnecting after a deploy spreads out instead of stampeding.
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
    var delay = Math.random() * ceiling;
    this.attempt += 1;
    var self = this;
    this.retryTimer = global.setTimeout(function () {
      self.open();
    }, delay);
  };

  Connection.prototype.send = function (message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  };

  Connection.prototype.close = function () {
    this.closed = true;
    global.clearTimeout(this.retryTimer);
    global.clearInterval(this.pingTimer);
    if (this.socket) this.socket.close(1000);
  };

  Connection.prototype.handle = function (frame) {
    if (frame.type === "intervention") this.receiveIntervention(frame);
    else if (frame.type === "replayed") this.replayed(frame);
    else if (frame.type === "room_message" && typeof this.options.onRoomMessage === "function") {
      this.options.onRoomMessage(frame);
    } else if (typeof this.options.onMessage === "function") this.options.onMessage(frame);
  };

  Connection.prototype.receiveIntervention = function (frame) {
    var id = frame.intervention_id;
    // Acknowledge even a repeat: the first ack may have been lost with the old socket.
    this.send({ type: "ack", intervention_id: id });
    if (this.seen.indexOf(id) !== -1) return;
    if (frame.expires_at && Date.parse(frame.expires_at) <= Date.now()) return;
    // A hole in the sequence means a push was lost in transit: ask for it, and hold this frame until
    // the replay has filled the hole, so that the shopper sees them in seq order.
    if (typeof frame.seq === "number" && frame.seq > this.lastSeq + 1) {
      for (var i = 0; i < this.held.length; i++) if (this.held[i].intervention_id === id) return;
      if (!this.held.length) {
        this.send({ type: "resume", last_seq: this.lastSeq });
        this.holdFor();
      }
      this.held.push(frame);
      return;
    }
    this.accept(frame);
    this.releaseHeld(false);
  };

  Connection.prototype.holdFor = function () {
    var self = this;
    global.clearTimeout(this.holdTimer);
    this.holdTimer = global.setTimeout(function () {
      if (self.held.length && self.send({ type: "resume", last_seq: self.lastSeq })) self.holdFor();
    }, HOLD_MS);
  };

  // The answer to a resume: every frame held now arrived before it, and was committed before the
  // replay was read, so a hole below it that the replay did not fill never will be. A full page
  // ("complete": false) asks for the next one.
  Connection.prototype.replayed = function (frame) {
    if (!this.held.length) return;
    if (frame.complete) this.releaseHeld(true);
    else if (this.send({ type: "resume", last_seq: this.lastSeq })) this.holdFor();
  };

  // Show the held frames the sequence has caught up with (all of them once a replay has answered).
  Connection.prototype.releaseHeld = function (all) {
    this.held.sort(function (a, b) {
      return a.seq - b.seq;
    });
    while (this.held.length && (all || this.held[0].seq <= this.lastSeq + 1)) {
      var next = this.held.shift();
      if (this.seen.indexOf(next.intervention_id) === -1) this.accept(next);
    }
    if (!this.held.length) {
      global.clearTimeout(this.holdTimer);
      this.holdTimer = null;
    }
  };

  Connection.prototype.accept = function (frame) {
    var id = frame.intervention_id;
    this.seen.push(id);
    if (this.seen.length > 200) this.seen.shift();
    storageSet(this.seenKey, this.seen);
    if (typeof frame.seq === "number" && frame.seq > this.lastSeq) {
      this.lastSeq = frame.seq;
      storageSet(this.seqKey, this.lastSeq);
    }
    if (typeof this.options.onIntervention === "function") this.options.onIntervention(frame);
    if (this.render) {
      this.queue.push(frame);
      this.showNext();
    }
  };

  Connection.prototype.engage = function (frame, event) {
    this.send({ type: "engagement", intervention_id: frame.intervention_id, event: event });
  };

  // --- Rendering -----------------------------------------------------------------------------------

  var FOCUSABLE = 'a[href], button:not([disabled]), input, select, textarea, [tabindex]:not([tabindex="-1"])';
  var counter = 0;

  function el(tag, className, text) {
    var node = global.document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  Connection.prototype.showNext = function () {
    if (this.showing || !this.queue.length) return;
    var frame = this.queue.shift();
    if (frame.expires_at && Date.parse(frame.expires_at) <= Date.now()) {
      this.showNext();
      return;
    }
    this.showing = this.build(frame);
    this.engage(frame, "displayed");
  };

  Connection.prototype.build = function (frame) {
    var self = this;
    var doc = global.document;
    var content = frame.content || {};
    var kind = content.kind === "banner" || content.kind === "toast" ? content.kind : "modal";
    var n = ++counter;
    var previousFocus = doc.activeElement;

    var root = el("div", "ie-root ie-" + kind);
    var box = el("div", "ie-box");
    box.setAttribute("data-intervention-id", frame.intervention_id);
    if (kind === "modal") {
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-modal", "true");
    } else {
      // Non-modal messages do not steal focus; screen readers announce them politely.
      box.setAttribute("role", kind === "toast" ? "status" : "region");
      box.setAttribute("aria-live", "polite");
    }
    var close = el("button", "ie-close", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    box.appendChild(close);
    if (content.image_url && safeHref(content.image_url)) {
      var img = el("img", "ie-image");
      img.src = safeHref(content.image_url);
      img.alt = "";
      box.appendChild(img);
    }
    var title = el(kind === "modal" ? "h2" : "strong", "ie-title", content.title || "");
    title.id = "ie-title-" + n;
    box.appendChild(title);
    box.setAttribute("aria-labelledby", title.id);
    if (content.body) {
      var body = el("p", "ie-body", content.body);
      body.id = "ie-body-" + n;
      box.appendChild(body);
      box.setAttribute("aria-describedby", body.id);
    }
    if (content.discount_code) {
      var code = el("p", "ie-code");
      code.appendChild(doc.createTextNode("Code: "));
      code.appendChild(el("strong", "", content.discount_code));
      box.appendChild(code);
    }
    var cta = null;
    if (content.cta_label) {
      cta = el("a", "ie-cta", content.cta_label);
      cta.href = safeHref(content.cta_url) || "#";
      box.appendChild(cta);
    }
    root.appendChild(box);
    doc.body.appendChild(root);

    var done = false;
    function finish(event) {
      if (done) return;
      done = true;
      doc.removeEventListener("keydown", onKey, true);
      root.parentNode && root.parentNode.removeChild(root);
      self.showing = null;
      if (event) self.engage(frame, event);
      if (kind === "modal" && previousFocus && typeof previousFocus.focus === "function") {
        previousFocus.focus();
      }
      self.showNext();
    }

    function onKey(event) {
      if (event.key === "Escape") {
        event.preventDefault();
        finish("dismissed");
      } else if (event.key === "Tab" && kind === "modal") {
        // Focus trap: Tab and Shift+Tab cycle inside the dialog.
        var items = box.querySelectorAll(FOCUSABLE);
        if (!items.length) return;
        var first = items[0];
        var last = items[items.length - 1];
        if (event.shiftKey && doc.activeElement === first) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && doc.activeElement === last) {
          event.preventDefault();
          first.focus();
        } else if (!box.contains(doc.activeElement)) {
          event.preventDefault();
          first.focus();
        }
      }
    }
    doc.addEventListener("keydown", onKey, true);

    close.addEventListener("click", function () {
      finish("dismissed");
    });
    if (kind === "modal") {
      root.addEventListener("click", function (event) {
        if (event.target === root) finish("dismissed");
      });
    }
    if (cta) {
      cta.addEventListener("click", function (event) {
        event.preventDefault();
        var href = safeHref(content.cta_url);
        self.engage(frame, "clicked");
        finish(null);
        if (href) self.navigateAfterFlush(href);
      });
    }
    if (kind === "modal") (cta || close).focus();
    return { frame: frame, close: finish };
  };

  // Give the "clicked" frame a moment to leave before the page (and its socket) goes away.
  Connection.prototype.navigateAfterFlush = function (href) {
    var socket = this.socket;
    var started = Date.now();
    (function wait() {
      if (!socket || socket.bufferedAmount === 0 || Date.now() - started > 500) {
        global.setTimeout(function () {
          global.location.assign(href);
        }, 50);
      } else {
        global.setTimeout(wait, 10);
      }
    })();
  };

  function base64UrlBytes(text) {
    var padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = global.atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  /*
   * Web Push: register the service worker, ask the shopper, subscribe with the engine's VAPID public key,
   * and hand the subscription to the shop's backend (which registers it with an API key:
   * POST /api/v1/users/{id}/push-tokens {"platform": "web", "subscription": …}).
   *   InterventionEngine.subscribePush({
   *     applicationServerKey: "<base64url>", serviceWorker: "/push-sw.js",
   *     register: (subscription) => fetch("/my-backend/push-subscription", {method: "POST", body: …}),
   *   })  // → the PushSubscription JSON; rejects when the browser or the shopper says no
   * unsubscribePush({serviceWorker, unregister}) does the reverse (unregister gets the endpoint), for a
   * shopper who turns notifications off.
   */
  async function pushRegistration(options) {
    if (!("serviceWorker" in global.navigator) || !("PushManager" in global)) {
      throw new Error("This browser has no Web Push");
    }
    return global.navigator.serviceWorker.register(options.serviceWorker, options.scope ? { scope: options.scope } : undefined)
      .then(function () { return global.navigator.serviceWorker.ready; });
  }

  async function subscribePush(options) {
    if (!options || !options.applicationServerKey || typeof options.register !== "function") {
      throw new Error("subscribePush needs applicationServerKey, serviceWorker and register");
    }
    var registration = await pushRegistration(options);
    var permission = await global.Notification.requestPermission();
    if (permission !== "granted") throw new Error("Notifications were not allowed (" + permission + ")");
    var subscription = await registration.pushManager.getSubscription();
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlBytes(options.applicationServerKey),
      });
    }
    var json = subscription.toJSON();
    await options.register(json);
    return json;
  }

  async function unsubscribePush(options) {
    var registration = await pushRegistration(options);
    var subscription = await registration.pushManager.getSubscription();
    if (!subscription) return false;
    var endpoint = subscription.endpoint;
    await subscription.unsubscribe();
    if (typeof options.unregister === "function") await options.unregister(endpoint);
    return true;
  }

  global.InterventionEngine = {
    connect: function (options) {
      return new Connection(options);
    },
    subscribePush: subscribePush,
    unsubscribePush: unsubscribePush,
  };
})(window);
