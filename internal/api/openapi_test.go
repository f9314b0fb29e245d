package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"gopkg.in/yaml.v3"

	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

// The OpenAPI description (docs/openapi.yaml) is checked against the
// server: routes and methods, the problem code table, and the schema of
// every answer the server really gives in the scenarios below, validated
// with a small JSON Schema (2020-12 subset) validator written here.

type spec struct {
	root map[string]any
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	// Normalise through JSON: maps with string keys, float64 numbers.
	j, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("openapi.yaml is not JSON-compatible: %v", err)
	}
	var root map[string]any
	if err := json.Unmarshal(j, &root); err != nil {
		t.Fatal(err)
	}
	return &spec{root: root}
}

func (s *spec) get(path ...string) any {
	var cur any = s.root
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (s *spec) resolve(v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		v = s.get(parts...)
		if v == nil {
			panic("unresolved $ref " + ref)
		}
	}
}

// validate checks v against schema (JSON Schema subset: $ref, type, const,
// enum, oneOf, anyOf, properties, required, additionalProperties, items,
// minLength, maxLength, minimum, contentEncoding base64).
func (s *spec) validate(schema any, v any, at string) error {
	sc, ok := s.resolve(schema).(map[string]any)
	if !ok {
		return fmt.Errorf("%s: bad schema %v", at, schema)
	}
	if one, ok := sc["oneOf"].([]any); ok {
		n := 0
		var errs []string
		for _, sub := range one {
			if err := s.validate(sub, v, at); err == nil {
				n++
			} else {
				errs = append(errs, err.Error())
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: %d oneOf branches match (%s)", at, n, strings.Join(errs, "; "))
		}
	}
	if any_, ok := sc["anyOf"].([]any); ok {
		okAny := false
		for _, sub := range any_ {
			okAny = okAny || s.validate(sub, v, at) == nil
		}
		if !okAny {
			return fmt.Errorf("%s: no anyOf branch matches", at)
		}
	}
	if c, ok := sc["const"]; ok && !reflect.DeepEqual(c, v) {
		return fmt.Errorf("%s: %v != const %v", at, v, c)
	}
	if e, ok := sc["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, v) }) {
		return fmt.Errorf("%s: %v not in %v", at, v, e)
	}
	if tv, ok := sc["type"]; ok {
		var types []string
		switch tt := tv.(type) {
		case string:
			types = []string{tt}
		case []any:
			for _, x := range tt {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			return fmt.Errorf("%s: type %s, want %v", at, jsonType(v), types)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := sc["properties"].(map[string]any)
		for _, r := range asStrings(sc["required"]) {
			if _, ok := x[r]; !ok {
				return fmt.Errorf("%s: required %q missing", at, r)
			}
		}
		for k, val := range x {
			ps, ok := props[k]
			if !ok {
				if ap, ok := sc["additionalProperties"].(bool); ok && !ap {
					return fmt.Errorf("%s: property %q not in the schema", at, k)
				}
				continue
			}
			if err := s.validate(ps, val, at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		if items, ok := sc["items"]; ok {
			for i, it := range x {
				if err := s.validate(items, it, at+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
		}
	case string:
		n := float64(utf8.RuneCountInString(x))
		if m, ok := sc["minLength"].(float64); ok && n < m {
			return fmt.Errorf("%s: shorter than %v", at, m)
		}
		if m, ok := sc["maxLength"].(float64); ok && n > m {
			return fmt.Errorf("%s: longer than %v", at, m)
		}
		if sc["contentEncoding"] == "base64" {
			if _, err := base64.StdEncoding.Strict().DecodeString(x); err != nil {
				return fmt.Errorf("%s: not base64", at)
			}
		}
		if sc["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				return fmt.Errorf("%s: not a date-time: %q", at, x)
			}
		}
	case float64:
		if m, ok := sc["minimum"].(float64); ok && x < m {
			return fmt.Errorf("%s: below %v", at, m)
		}
	}
	return nil
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func asStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			out = append(out, x.(string))
		}
	}
	return out
}

// checkAnswer validates one real answer against the spec.
func (s *spec) checkAnswer(t *testing.T, method, path string, status int, ct string, body []byte) {
	t.Helper()
	if s.get("paths", path, strings.ToLower(method)) == nil {
		// A method the route does not have: its answer (405) is documented
		// on the route's own operation.
		if status != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s not in the spec", method, path)
		}
		for m := range s.get("paths", path).(map[string]any) {
			method = m
		}
	}
	resp := s.resolve(s.get("paths", path, strings.ToLower(method), "responses", strconv.Itoa(status)))
	if resp == nil {
		t.Fatalf("%s %s: status %d not documented (%s)", method, path, status, body)
	}
	m := resp.(map[string]any)
	content, _ := m["content"].(map[string]any)
	media, ok := content[ct].(map[string]any)
	if !ok {
		t.Fatalf("%s %s %d: content type %q not documented", method, path, status, ct)
	}
	schema := media["schema"]
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if err := s.validate(schema, v, method+" "+path+" "+strconv.Itoa(status)); err != nil {
		t.Fatalf("%v\nbody: %s", err, body)
	}
}

func TestOpenAPIMatchesServer(t *testing.T) {
	s := loadSpec(t)
	if v, _ := s.root["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi %q, want 3.1.x", v)
	}
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{PINs: []string{goodPIN, goodPIN, goodPIN, goodPIN, wrongPIN}}})

	// Routes and methods.
	paths := s.get("paths").(map[string]any)
	var specPaths, routePaths []string
	for p := range paths {
		specPaths = append(specPaths, p)
	}
	for p, rt := range h.srv.routes {
		routePaths = append(routePaths, p)
		ops := paths[p].(map[string]any)
		var methods []string
		for m := range ops {
			methods = append(methods, strings.ToUpper(m))
		}
		sort.Strings(methods)
		if !slices.Equal(methods, rt.methods) {
			t.Errorf("%s: spec methods %v, server %v", p, methods, rt.methods)
		}
	}
	sort.Strings(specPaths)
	sort.Strings(routePaths)
	if !slices.Equal(specPaths, routePaths) {
		t.Fatalf("spec paths %v, server %v", specPaths, routePaths)
	}

	// Problem codes.
	table := s.get("x-problem-codes").(map[string]any)
	enum := asStrings(s.get("components", "schemas", "Problem", "properties", "code", "enum"))
	if len(table) != len(Codes()) || len(enum) != len(Codes()) {
		t.Fatalf("spec has %d/%d codes, server %d", len(table), len(enum), len(Codes()))
	}
	for code, status := range Codes() {
		if table[code] != float64(status) || !slices.Contains(enum, code) {
			t.Errorf("code %s: spec %v, server %d", code, table[code], status)
		}
	}

	// Real answers.
	doc := []byte("openapi check")
	sum := sha256.Sum256(doc)
	exchanges := []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"GET", "/v1/status", "", nil, 200},
		{"GET", "/v1/readers", "", nil, 200},
		{"GET", "/v1/card", "", nil, 200},
		{"POST", "/v1/authenticate", authBody(goodNonce), nil, 200},
		{"POST", "/v1/sign", validSign, nil, 200},
		{"POST", "/v1/sign", `{"document":"` + b64(doc) + `","format":"cades","description":"x"}`, nil, 200},
		{"POST", "/v1/sign", `{"documentDigest":"` + b64(sum[:]) + `","digestAlgorithm":"SHA-256","format":"cades"}`, nil, 200},
		{"POST", "/v1/sign", validSign, nil, 409}, // wrong PIN: triesLeft
		{"GET", "/v1/status", "", []string{"Host", "evil.example"}, 421},
		{"GET", "/v1/card", "", []string{"Origin", "https://evil.example"}, 403},
		{"GET", "/v1/sign", "", nil, 405},
		{"POST", "/v1/sign", validSign, []string{"Content-Type", "text/plain"}, 415},
		{"POST", "/v1/authenticate", `{"challengeNonce":"` + strings.Repeat("A", 5000) + `"}`, nil, 413},
		{"POST", "/v1/authenticate", `{"challengeNonce":"x"}`, nil, 400},
		{"GET", "/v1/card", "", []string{"Origin", testOrigin}, 200},
		{"GET", "/v1/card?reader=nope", "", nil, 409},
		{"GET", "/v1/events", "", nil, 400},
	}
	for _, x := range exchanges {
		w := h.do(x.method, x.path, x.body, x.hdr...)
		if w.Code != x.status {
			t.Fatalf("%s %s: %d, want %d: %s", x.method, x.path, w.Code, x.status, w.Body)
		}
		s.checkAnswer(t, x.method, strings.Split(x.path, "?")[0], w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
	}
	// 429 and its header.
	hr := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeCancel}, options: func(o *Options) { o.RateBurst, o.RatePerMinute = 1, 1 }})
	hr.do("POST", "/v1/sign", validSign)
	w := hr.do("POST", "/v1/sign", validSign)
	s.checkAnswer(t, "POST", "/v1/sign", w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
	if w.Code != 429 {
		t.Fatal(w.Code)
	}
	// Event stream messages.
	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := l.dialWS(ctx, testOrigin, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	msgs := [][]byte{}
	_, hello, _ := c.Read(ctx)
	msgs = append(msgs, hello)
	h.mr.Remove(readerName)
	_, ev, _ := c.Read(ctx)
	msgs = append(msgs, ev)
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`))
	for {
		_, m, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		if strings.Contains(string(m), `"pong"`) {
			break
		}
	}
	for _, m := range msgs {
		s.checkAnswer(t, "GET", "/v1/events", 101, "application/json", m)
	}

	// Requests: what the server accepts, the schema accepts; a sample of
	// what it refuses, the schema refuses too.
	for _, ok := range []struct{ schema, body string }{
		{"AuthRequest", authBody(goodNonce)},
		{"SignRequest", validSign},
		{"SignRequest", `{"document":"` + b64(doc) + `","format":"cades","lang":"en"}`},
		{"SignRequest", `{"documentDigest":"` + b64(sum[:]) + `","digestAlgorithm":"SHA-256","format":"cades"}`},
	} {
		var v any
		_ = json.Unmarshal([]byte(ok.body), &v)
		if err := s.validate(s.get("components", "schemas", ok.schema), v, ok.schema); err != nil {
			t.Errorf("valid request refused by the schema: %v", err)
		}
	}
	for _, bad := range []struct{ schema, body string }{
		{"AuthRequest", `{"challengeNonce":"` + goodNonce + `","pin":"1234"}`},
		{"AuthRequest", `{"challengeNonce":"short"}`},
		{"SignRequest", `{"dataToSign":"YWJj","document":"YWJj","format":"cades"}`},
		{"SignRequest", `{"documentDigest":"YWJj","digestAlgorithm":"SHA-1","format":"cades"}`},
		{"SignRequest", `{"document":"YWJj"}`},
	} {
		var v any
		_ = json.Unmarshal([]byte(bad.body), &v)
		if s.validate(s.get("components", "schemas", bad.schema), v, bad.schema) == nil {
			t.Errorf("schema %s accepts %s", bad.schema, bad.body)
		}
		if bad.schema == "SignRequest" {
			if _, p := DecodeSignRequest([]byte(bad.body)); p == nil {
				t.Errorf("server accepts %s", bad.body)
			}
		}
	}
}

// TestOpenAPIValidatorCatchesDrift shows that the check above can fail.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	s := loadSpec(t)
	h := newHarness(t, harnessOpts{})
	w := h.do("GET", "/v1/status", "")
	schema := s.get("components", "schemas", "Status")
	mutations := []func(m map[string]any){
		func(m map[string]any) { m["extra"] = 1 },
		func(m map[string]any) { delete(m, "version") },
		func(m map[string]any) { m["readers"].([]any)[0].(map[string]any)["busy"] = "no" },
		func(m map[string]any) { m["apiVersion"] = "2.0" },
		func(m map[string]any) { m["capabilities"] = []any{"apdu"} },
	}
	for i, mut := range mutations {
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		if err := s.validate(schema, m, "status"); err != nil {
			t.Fatalf("unmodified answer refused: %v", err)
		}
		mut(m)
		if s.validate(schema, m, "status") == nil {
			t.Errorf("mutation %d not detected", i)
		}
	}
}
