package main

// A Go Machinery v1 worker's side of a chord on Redis, with a minimal RESP client (stdlib only):
// record a member's success as Go's Redis backend does (SET <task UUID> <TaskState>), check the
// group as GroupCompleted does (MGET of the members' states), and trigger the chord as TriggerChord
// does (the redsync mutex TriggerChordMutex, then ChordTriggered flipped in the GroupMeta).

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

type respConn struct {
	conn   net.Conn
	reader *bufio.Reader
}

func dialRedis(addr string, db int) (*respConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &respConn{conn, bufio.NewReader(conn)}
	if _, err := c.do("SELECT", strconv.Itoa(db)); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *respConn) do(args ...string) (interface{}, error) {
	out := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		out = append(out, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	if _, err := c.conn.Write(out); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *respConn) read() (interface{}, error) {
	line, err := c.reader.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, errors.New("short reply")
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.reader, buf); err != nil {
			return nil, err
		}
		return buf[:n], nil
	case '*':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return nil, nil
		}
		items := make([]interface{}, n)
		for i := range items {
			if items[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

type memberJob struct {
	Redis     string
	DB        int
	TaskUUID  string
	TaskName  string
	GroupUUID string
	Results   []Arg
}

const releaseScript = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

// completeMember does what Go's worker does when a chord member succeeds; it reports whether it
// triggered the chord and, if so, the typed results it would append to the callback's args.
func completeMember(line []byte) interface{} {
	fail := func(err error) interface{} { return map[string]interface{}{"ok": false, "error": err.Error()} }
	job := new(memberJob)
	if err := decodeStrict(line, job); err != nil {
		return fail(err)
	}
	c, err := dialRedis(job.Redis, job.DB)
	if err != nil {
		return fail(err)
	}
	defer c.conn.Close()
	results := []*TaskResult{}
	for _, r := range job.Results {
		v, err := convert(r.Type, r.Value)
		if err != nil {
			return fail(err)
		}
		results = append(results, &TaskResult{Type: r.Type, Value: v})
	}
	state, _ := json.Marshal(&TaskState{TaskUUID: job.TaskUUID, TaskName: job.TaskName, State: "SUCCESS",
		Results: results, CreatedAt: time.Now().UTC()})
	if _, err := c.do("SET", job.TaskUUID, string(state), "EX", "600"); err != nil {
		return fail(err)
	}
	meta, err := readMeta(c, job.GroupUUID)
	if err != nil {
		return fail(err)
	}
	states, err := readStates(c, meta.TaskUUIDs)
	if err != nil {
		return fail(err)
	}
	for _, s := range states {
		if s.State != "SUCCESS" && s.State != "FAILURE" {
			return map[string]interface{}{"ok": true, "triggered": false, "completed": false}
		}
	}
	token := make([]byte, 16)
	rand.Read(token)
	value := base64.StdEncoding.EncodeToString(token)
	for {
		reply, err := c.do("SET", "TriggerChordMutex", value, "NX", "PX", "8000")
		if err != nil {
			return fail(err)
		}
		if reply == "OK" {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	triggered := false
	meta, err = readMeta(c, job.GroupUUID)
	if err == nil && !meta.ChordTriggered {
		meta.ChordTriggered = true
		encoded, _ := json.Marshal(meta)
		if _, err = c.do("SET", job.GroupUUID, string(encoded), "EX", "600"); err == nil {
			triggered = true
		}
	}
	c.do("EVAL", releaseScript, "1", "TriggerChordMutex", value)
	if err != nil {
		return fail(err)
	}
	appended := []convertedArg{}
	if triggered {
		for _, s := range states {
			for _, r := range s.Results {
				v, err := convert(r.Type, r.Value)
				if err != nil {
					return fail(err)
				}
				appended = append(appended, convertedArg{"", r.Type, fmt.Sprintf("%T", v), v})
			}
		}
	}
	return map[string]interface{}{"ok": true, "triggered": triggered, "completed": true, "appended": appended}
}

func readMeta(c *respConn, groupUUID string) (*GroupMeta, error) {
	reply, err := c.do("GET", groupUUID)
	if err != nil {
		return nil, err
	}
	raw, ok := reply.([]byte)
	if !ok {
		return nil, fmt.Errorf("no group meta under %s", groupUUID)
	}
	meta := new(GroupMeta)
	return meta, decodeStrict(raw, meta)
}

func readStates(c *respConn, uuids []string) ([]*TaskState, error) {
	reply, err := c.do(append([]string{"MGET"}, uuids...)...)
	if err != nil {
		return nil, err
	}
	items, _ := reply.([]interface{})
	states := make([]*TaskState, len(items))
	for i, item := range items {
		raw, ok := item.([]byte)
		if !ok { // as Go's Redis backend: a member with no state at all fails the group check
			return nil, fmt.Errorf("Expected byte array, instead got: %v", item)
		}
		states[i] = new(TaskState)
		if err := decodeStrict(raw, states[i]); err != nil {
			return nil, err
		}
	}
	return states, nil
}

// writeState writes a TaskState (typed Results with JSON values) with real Go values, by json.Marshal.
func writeState(line []byte) interface{} {
	state := new(TaskState)
	if err := decodeStrict(line, state); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	for _, r := range state.Results {
		v, err := convert(r.Type, r.Value)
		if err != nil {
			return map[string]interface{}{"ok": false, "error": err.Error()}
		}
		r.Value = v
	}
	return state
}
