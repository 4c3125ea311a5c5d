package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Field is one column of a query's result frame.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"` // time, number, string, boolean, other
}

// Frame is one data frame of a query's result.
type Frame struct {
	Fields []Field
	Rows   int
	// Values holds the frame's columns (Values[i] is Fields[i]'s), as
	// decoded from JSON: numbers are float64, times epoch milliseconds.
	Values [][]any
}

// Query runs one panel query (a target of a panel, with its variables
// already substituted, as Grafana's front end hands it over) through
// Grafana's /api/ds/query, as the browser does: the data source's back end
// (for ClickHouse, the plugin, which expands the macros) runs it over the
// range from..to with the given interval.
func (c *Client) Query(ctx context.Context, target map[string]any, from, to time.Time, interval time.Duration) ([]Frame, error) {
	q := make(map[string]any, len(target)+2)
	for k, v := range target {
		q[k] = v
	}
	q["intervalMs"] = interval.Milliseconds()
	q["maxDataPoints"] = 1000
	body, err := json.Marshal(map[string]any{
		"queries": []any{q},
		"from":    strconv.FormatInt(from.UnixMilli(), 10),
		"to":      strconv.FormatInt(to.UnixMilli(), 10),
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/api/ds/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.auth.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.auth.Token)
	} else if c.auth.User != "" {
		req.SetBasicAuth(c.auth.User, c.auth.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query: cannot reach Grafana at %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	var out struct {
		Results map[string]struct {
			Error  string `json:"error"`
			Frames []struct {
				Schema struct {
					Fields []Field `json:"fields"`
				} `json:"schema"`
				Data struct {
					Values [][]any `json:"values"`
				} `json:"data"`
			} `json:"frames"`
		} `json:"results"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, &APIError{Status: resp.StatusCode, Op: "query", Body: string(b)}
	}
	r := out.Results[fmt.Sprint(target["refId"])]
	if r.Error != "" {
		return nil, fmt.Errorf("query %v: %s", target["refId"], r.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Status: resp.StatusCode, Op: "query", Body: string(b)}
	}
	var frames []Frame
	for _, f := range r.Frames {
		fr := Frame{Fields: f.Schema.Fields, Values: f.Data.Values}
		for _, v := range f.Data.Values {
			fr.Rows = max(fr.Rows, len(v))
		}
		frames = append(frames, fr)
	}
	return frames, nil
}

// CheckFrames says whether a query's result suits a panel type: some rows;
// for a time series a time and a number field; for a bar chart a string or
// time field and a number field; for a stat, gauge, bar gauge or pie chart a
// number field.
func CheckFrames(panelType string, frames []Frame) error {
	rows, times, numbers, strs := 0, 0, 0, 0
	var names []string
	for _, f := range frames {
		rows = max(rows, f.Rows)
		for _, fl := range f.Fields {
			names = append(names, fl.Name+":"+fl.Type)
			switch fl.Type {
			case "time":
				times++
			case "number":
				numbers++
			case "string":
				strs++
			}
		}
	}
	if rows == 0 {
		return fmt.Errorf("no rows (fields %v)", names)
	}
	switch panelType {
	case "timeseries":
		if times == 0 || numbers == 0 {
			return fmt.Errorf("a time series needs a time and a number field, got %v", names)
		}
	case "barchart":
		if (strs == 0 && times == 0) || numbers == 0 {
			return fmt.Errorf("a bar chart needs a string or time field and a number field, got %v", names)
		}
	case "stat", "bargauge", "gauge", "piechart":
		if numbers == 0 {
			return fmt.Errorf("a %s needs a number field, got %v", panelType, names)
		}
	}
	return nil
}
