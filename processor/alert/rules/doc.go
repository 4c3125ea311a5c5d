// Package rules reads the sales team's alert rules (a YAML file) and decides,
// for one shoptrail.Signal, which alerts it causes. It is pure: no I/O
// except Load reading the file, no goroutines, no clock (times come from the
// signal or the caller).
//
// # The file
//
//	destinations:            # where alerts go; URLs and secrets from env or files
//	  sales:
//	    type: webhook        # webhook | slack | dingtalk | wecom | feishu
//	    url_env: SALES_HOOK_URL
//	    secret_env: SALES_HOOK_SECRET
//	    rate_limit: 20/m     # N/s, N/m or N/h; empty: none
//	sites:
//	  shop-1:                # a site id, or "*" for every site
//	    timezone: Asia/Shanghai
//	    quiet_hours: {from: "22:00", to: "08:00"}
//	    rules:
//	      - name: valuable-carts
//	        type: cart_abandoned
//	        min_value: 500   # value >= 500 OR tier in tiers (either alone if only one is given)
//	        tiers: [A, B]
//	        follow_up: {personal_email: 1000, phone_call: 5000}
//	        cooldown: 24h
//	        hold_out: 0.1
//	        route: {to: [sales], tiers: {A: [key-accounts]}}
//	      - name: turning-dormant
//	        type: customer_stage  # customer.stage_changed into one of stages
//	        stages: [at_risk, dormant, lost]
//	        tiers: [A, B]         # only customers of these tiers
//	        digest: {at: "09:00", group_by: destination}   # or channel; none: one by one
//	        route: {to: [team]}
//	      - name: new-key-accounts
//	        type: customer_tier   # customer.tier_changed
//	        tiers: [A]            # moved into; from_tiers: moved out of
//	        route: {to: [key-accounts]}
//
// # Deciding
//
// Set.Evaluate returns one Decision per (rule, destination) the signal
// matches. Its AlertID is derived from the signal id, the rule and the
// destination, so a replay decides the same ids. HeldOut is a deterministic
// function of the site, rule and subject (hash below the rule's hold_out
// share), so replays and several alerters agree on who is in the control
// group. Cooldowns, rate limits and quiet hours are applied by the alerter,
// which owns the state; the rules only state them.
package rules
