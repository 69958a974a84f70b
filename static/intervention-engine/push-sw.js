/*
 * The Web Push service worker of the Intervention Engine's JS client: shows each push as a notification
 * and opens its link when clicked. Serve it from the shop's own origin, at a path whose scope covers the
 * pages (e.g. /push-sw.js). The payload is what the engine's webpush provider encrypts:
 *   {"title": "…", "body": "…", "data": {"delivery_id": "…", "url": "https://…", …}}
 * Content is shown as text only (the Notifications API renders no markup).
 */
/* eslint-env serviceworker */
"use strict";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener("push", function (event) {
  var message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = { title: event.data ? event.data.text() : "" };
  }
  var data = message.data || {};
  event.waitUntil(
    self.registration.showNotification(String(message.title || ""), {
      body: String(message.body || ""),
      tag: data.delivery_id ? "ie-" + data.delivery_id : undefined,
      data: data,
    })
  );
});

function safeUrl(url) {
  try {
    var parsed = new URL(url, self.location.origin);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch (error) {
    return null;
  }
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = safeUrl((event.notification.data || {}).url || "/");
  if (url) event.waitUntil(self.clients.openWindow(url));
});
