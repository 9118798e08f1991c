package main

// What a Go Machinery v1 worker sends when a task succeeds (its taskSucceeded): every OnSuccess
// callback, with each of the task's typed results appended to the callback's own args as its own
// argument unless the task is immutable. The callbacks are written by json.Marshal, as Go's
// broker publishes them.

import "fmt"

type successJob struct {
	Message Signature
	Results []TaskResult
}

func succeed(line []byte) interface{} {
	job := new(successJob)
	if err := decodeStrict(line, job); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	sig := &job.Message
	if err := realValues(sig); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	results := make([]TaskResult, len(job.Results))
	for i, r := range job.Results {
		v, err := convert(r.Type, r.Value)
		if err != nil {
			return map[string]interface{}{"ok": false, "error": fmt.Sprintf("Results[%d]: %v", i, err)}
		}
		results[i] = TaskResult{Type: r.Type, Value: v}
	}
	callbacks := []*Signature{}
	for _, callback := range sig.OnSuccess {
		if !sig.Immutable {
			for _, r := range results {
				callback.Args = append(callback.Args, Arg{Type: r.Type, Value: r.Value})
			}
		}
		callbacks = append(callbacks, callback)
	}
	return map[string]interface{}{"ok": true, "callbacks": callbacks}
}
