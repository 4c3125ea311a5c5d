package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// `alerts check` accepts a valid file and refuses an invalid one with the
// reason; `alerts test` sends a rule's sample to its destination.
func TestAlertsCheckAndTest(t *testing.T) {
	var got atomic.Int32
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		b := make([]byte, 1<<16)
		n, _ := r.Body.Read(b)
		body.Store(string(b[:n]))
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`destinations:
  team: {type: slack, url: "`+srv.URL+`/services/T/B/X"}
sites:
  shop-1:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 300, route: {to: [team]}}
      - {name: drops, type: conversion_drop, route: {to: [team]}}
      - {name: leads, type: hot_lead, route: {to: [team]}}
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("sites:\n  x:\n    rules:\n      - {name: c, type: carts_gone, route: {to: [nowhere]}}\n"), 0o600)

	if err := runAlerts(context.Background(), []string{"check", "-alerts.file", good}); err != nil {
		t.Errorf("check good: %v", err)
	}
	err := runAlerts(context.Background(), []string{"check", "-alerts.file", bad})
	if err == nil || !strings.Contains(err.Error(), `type "carts_gone"`) || !strings.Contains(err.Error(), `unknown destination "nowhere"`) {
		t.Errorf("check bad: %v", err)
	}
	// Loopback is refused unless allowed.
	if err := runAlerts(context.Background(), []string{"test", "-alerts.file", good, "--rule", "carts"}); err == nil || got.Load() != 0 {
		t.Errorf("test to loopback without -alerts.allow-loopback: %v, %d requests", err, got.Load())
	}
	if err := runAlerts(context.Background(), []string{"test", "-alerts.file", good, "--rule", "carts", "-alerts.allow-loopback"}); err != nil {
		t.Errorf("test: %v", err)
	}
	if got.Load() != 1 || !strings.Contains(body.Load().(string), "[test] Abandoned cart") {
		t.Errorf("receiver got %d requests: %v", got.Load(), body.Load())
	}
	for rule, want := range map[string]string{"drops": "[test] Conversion view -\\u003e cart fell", "leads": "[test] Hot lead: sample-customer"} {
		if err := runAlerts(context.Background(), []string{"test", "-alerts.file", good, "--rule", rule, "-alerts.allow-loopback"}); err != nil {
			t.Errorf("test %s: %v", rule, err)
		}
		if !strings.Contains(body.Load().(string), want) {
			t.Errorf("sample of %s: %v", rule, body.Load())
		}
	}
	if err := runAlerts(context.Background(), []string{"test", "-alerts.file", good, "--rule", "nope", "-alerts.allow-loopback"}); err == nil {
		t.Error("unknown rule accepted")
	}
}
