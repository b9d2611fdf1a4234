// Command go_digest prints the input digests of a table of tracked-start requests, made by
// Go's own encoding/json exactly as coder's workspacesdk.StartProcessDigest makes them, so
// procwarden's Rust encoder (src/api/digest.rs) can be checked against real Go.
//
// The struct below has coder's StartProcessRequest field order and tags (coder commit
// 09c521c5). UUID stands in for github.com/google/uuid.UUID: a 16-byte array that marshals
// as its canonical text, so `omitempty` never drops it (an array of length 16 is never empty).
//
// Output: a JSON array on stdout. Every string of a request is given in hex, since some hold
// invalid UTF-8.
//
// Go 1.22 started writing U+0008 and U+000C as \b and \f (earlier: \u0008, \u000c). The
// contract follows 1.22 and later, so on an older Go the two escapes are rewritten in the
// marshalled bytes before hashing (a scan over escapes, so an escaped backslash is never
// misread); on 1.22 and later the rewrite finds nothing to change.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"
)

type UUID [16]byte

func (u UUID) MarshalText() ([]byte, error) {
	b := u[:]
	return []byte(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])), nil
}

type StartProcessRequest struct {
	Command         string            `json:"command"`
	WorkDir         string            `json:"workdir,omitempty"`
	Env             map[string]string `json:"env,omitempty"`
	Background      bool              `json:"background,omitempty"`
	ProcessID       UUID              `json:"process_id,omitempty"`
	AgentInstanceID UUID              `json:"agent_instance_id,omitempty"`
	Deadline        time.Time         `json:"deadline,omitempty"`
	InputDigest     string            `json:"input_digest,omitempty"`
}

// modernize rewrites \u0008 and \u000c escapes as \b and \f (see the package comment).
func modernize(data []byte) []byte {
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			out = append(out, data[i])
			continue
		}
		if data[i+1] == 'u' && i+6 <= len(data) {
			switch string(data[i+2 : i+6]) {
			case "0008":
				out = append(out, '\\', 'b')
				i += 5
				continue
			case "000c":
				out = append(out, '\\', 'f')
				i += 5
				continue
			}
		}
		out = append(out, data[i], data[i+1])
		i++
	}
	return out
}

// digest is coder's StartProcessDigest, on this struct.
func digest(req StartProcessRequest) (string, []byte) {
	req.ProcessID = UUID{}
	req.AgentInstanceID = UUID{}
	req.InputDigest = ""
	req.Deadline = req.Deadline.UTC()
	if len(req.Env) == 0 {
		req.Env = nil
	}
	data, _ := json.Marshal(req)
	data = modernize(data)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), data
}

type testCase struct {
	Name       string
	Command    string
	WorkDir    string
	Env        map[string]string
	EmptyEnv   bool
	Background bool
	// Deadline as sent on the wire (RFC 3339), "" for Go's zero time.
	Deadline string
}

type vector struct {
	Name       string      `json:"name"`
	Command    string      `json:"command_hex"`
	WorkDir    string      `json:"workdir_hex"`
	Env        [][2]string `json:"env_hex"`
	Background bool        `json:"background"`
	Deadline   string      `json:"deadline"`
	JSON       string      `json:"json_hex"`
	Digest     string      `json:"digest"`
}

func main() {
	cases := []testCase{
		{Name: "plain command", Command: "echo hi"},
		{Name: "empty command", Command: ""},
		{Name: "workdir and background", Command: "make", WorkDir: "/tmp/build", Background: true},
		{Name: "empty env is null", Command: "true", EmptyEnv: true},
		{Name: "env sorted by key", Command: "env", Env: map[string]string{"ZED": "1", "ALPHA": "2", "MID": "3", "a": "lower", "_": "u"}},
		{Name: "env keys needing escaping", Command: "env", Env: map[string]string{"K\"Q": "v\\1", "K<>&": "<script>&amp;", "K\tTAB": "line\nbreak", "K\u2028LS": "\u2029"}},
		{Name: "html characters", Command: "test 1 < 2 && echo '>' & wait"},
		{Name: "line and paragraph separators", Command: "printf 'a\u2028b\u2029c'"},
		{Name: "control characters", Command: "a\x00b\x01c\x08d\x0ce\x1ff\x7fg\r\t\n"},
		{Name: "backslash before u0008 text", Command: "\\u0008 and \\u000c are text, \b\f are not"},
		{Name: "invalid utf-8", Command: "bad \xff \xe2\x82 \xed\xa0\x80 \xc0\xaf end", WorkDir: "/tmp/\xfe"},
		{Name: "literal replacement character", Command: "\ufffd is valid"},
		{Name: "multibyte text", Command: "echo héllo wörld 日本 🦀"},
		{Name: "utc deadline", Command: "sleep 1", Deadline: "2026-12-01T22:00:00Z"},
		{Name: "non-utc deadline with nanoseconds", Command: "sleep 1", Deadline: "2026-12-01T23:30:05.123456789+01:30"},
		{Name: "deadline with trailing zeros", Command: "sleep 1", Deadline: "2026-12-01T22:00:00.500000-07:00"},
		{Name: "deadline with one nanosecond", Command: "x", Deadline: "2030-01-02T03:04:05.000000001Z"},
		{Name: "zero deadline written in another zone", Command: "x", Deadline: "0001-01-01T01:00:00+01:00"},
		{Name: "deadline before year zero", Command: "x", Deadline: "0000-01-01T00:00:00+00:01"},
		{Name: "everything", Command: "rm -rf build && make deploy", WorkDir: "/srv/app", Env: map[string]string{"GOFLAGS": "-mod=mod", "PATH": "/usr/bin:/bin"}, Background: true, Deadline: "2027-06-30T12:00:00.25+02:00"},
	}
	out := []vector{}
	for _, c := range cases {
		req := StartProcessRequest{Command: c.Command, WorkDir: c.WorkDir, Env: c.Env, Background: c.Background}
		if c.EmptyEnv {
			req.Env = map[string]string{}
		}
		// Identity fields are set as a client sets them; the digest ignores them.
		req.ProcessID = UUID{1, 2, 3}
		req.AgentInstanceID = UUID{4, 5, 6}
		req.InputDigest = "ignored"
		if c.Deadline != "" {
			if err := json.Unmarshal([]byte(`"`+c.Deadline+`"`), &req.Deadline); err != nil {
				fmt.Fprintln(os.Stderr, c.Name, err)
				os.Exit(1)
			}
		}
		sum, data := digest(req)
		v := vector{
			Name:       c.Name,
			Command:    hex.EncodeToString([]byte(c.Command)),
			WorkDir:    hex.EncodeToString([]byte(c.WorkDir)),
			Env:        [][2]string{},
			Background: c.Background,
			Deadline:   c.Deadline,
			JSON:       hex.EncodeToString(data),
			Digest:     sum,
		}
		for k, val := range req.Env {
			v.Env = append(v.Env, [2]string{hex.EncodeToString([]byte(k)), hex.EncodeToString([]byte(val))})
		}
		sortPairs(v.Env)
		out = append(out, v)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"go_version": runtime.Version(), "vectors": out}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func sortPairs(p [][2]string) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j][0] < p[j-1][0]; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}
