package main

import (
	"net/http"
	"strings"
)

// demoHandler serves the demo shop page. It sends a page view and an
// add-to-cart to the collector with a minimal inline tracker; the beacon
// replaces it once collector/beacon lands.
func demoHandler(collectorURL string) http.Handler {
	page := strings.ReplaceAll(demoPage, "{{collector}}", collectorURL)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	})
}

const demoPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>shoptrail demo shop</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:2em auto">
<h1>shoptrail demo shop</h1>
<p>Every click sends an event to the collector at <code>{{collector}}</code>.</p>
<button id="add">Add "Resistor kit" to cart</button> <span id="status"></span>
<script>
(function () {
  var id = localStorage.getItem("st_aid") || (crypto.randomUUID && crypto.randomUUID()) || String(Math.random()).slice(2);
  localStorage.setItem("st_aid", id);
  function send(msg) {
    msg.anonymousId = id;
    msg.messageId = (crypto.randomUUID && crypto.randomUUID()) || String(Math.random()).slice(2);
    msg.timestamp = new Date().toISOString();
    msg.context = {page: {url: location.href, path: location.pathname, referrer: document.referrer, title: document.title}, userAgent: navigator.userAgent};
    fetch("{{collector}}/v1/batch", {method: "POST", keepalive: true, headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({batch: [msg], sentAt: new Date().toISOString(), writeKey: "dev"})})
      .then(function (r) { document.getElementById("status").textContent = "sent: " + r.status; });
  }
  send({type: "page"});
  document.getElementById("add").onclick = function () {
    send({type: "track", event: "Product Added", properties: {product_id: "rk-1", name: "Resistor kit", price: 9.9, quantity: 1, currency: "USD"}});
  };
})();
</script>
</body></html>
`
