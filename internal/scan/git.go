package scan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// blobOrigin is where a blob first appeared in history.
type blobOrigin struct {
	order  int
	commit string
	author string
	date   string
	path   string
}

// ScanGit scans every blob in the history of the repository at dir once,
// with the git command. Each secret is reported once, at the commit that
// first added it (by `git log --reverse` order), with whether any blob at
// HEAD still holds it. Merge commits' own changes are not attributed.
func (s *Scanner) ScanGit(ctx context.Context, dir string, emit func(Finding)) (Stats, error) {
	var st Stats
	origins, order, err := gitBlobOrigins(ctx, dir)
	if err != nil {
		return st, err
	}
	head, err := gitHeadBlobs(ctx, dir)
	if err != nil {
		return st, err
	}
	type blob struct {
		sha  string
		data []byte
	}
	blobs := make(chan blob, s.opts.Workers*2)
	var mu sync.Mutex
	var all []Finding
	var allOrder []int
	headFP := map[string]bool{}
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range blobs {
				o := origins[b.sha]
				fs := s.det.Scan(o.path, b.data)
				mu.Lock()
				for _, f := range fs {
					f.Commit, f.Author, f.Date = o.commit, o.author, o.date
					all = append(all, f)
					allOrder = append(allOrder, o.order)
					if head[b.sha] {
						headFP[f.Fingerprint] = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	readErr := gitCatBlobs(ctx, dir, order, s.opts.MaxFileSize, func(sha string, data []byte) {
		if isBinary(data) {
			atomic.AddInt64(&st.Skipped, 1)
			return
		}
		atomic.AddInt64(&st.Files, 1)
		atomic.AddInt64(&st.Bytes, int64(len(data)))
		blobs <- blob{sha, data}
	}, func() { atomic.AddInt64(&st.Skipped, 1) })
	close(blobs)
	wg.Wait()
	if readErr != nil {
		return st, readErr
	}
	// One finding per secret and rule: the earliest blob that holds it.
	best := map[string]int{}
	for i, f := range all {
		k := f.RuleID + "/" + f.Fingerprint
		if j, ok := best[k]; !ok || allOrder[i] < allOrder[j] {
			best[k] = i
		}
	}
	var out []Finding
	for _, i := range best {
		f := all[i]
		present := headFP[f.Fingerprint]
		f.PresentAtHead = &present
		out = append(out, f)
	}
	SortFindings(out)
	for _, f := range out {
		emit(f)
	}
	return st, nil
}

func gitCmd(ctx context.Context, dir string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "git", append([]string{"-C", dir, "-c", "core.quotePath=false"}, args...)...)
}

// gitBlobOrigins maps each blob added or modified in any commit to the
// first commit (oldest first) that introduced it.
func gitBlobOrigins(ctx context.Context, dir string) (map[string]blobOrigin, []string, error) {
	cmd := gitCmd(ctx, dir, "log", "--all", "--reverse", "--no-renames", "--raw", "--no-abbrev", "--format=%x00%H%x00%an <%ae>%x00%aI")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("scan: git log: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("scan: git log: %w", err)
	}
	origins := map[string]blobOrigin{}
	var order []string
	var commit, author, date string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "\x00") {
			parts := strings.SplitN(line[1:], "\x00", 3)
			if len(parts) == 3 {
				commit, author, date = parts[0], parts[1], parts[2]
			}
			continue
		}
		// :100644 100644 <old> <new> M\tpath
		if !strings.HasPrefix(line, ":") {
			continue
		}
		meta, path, ok := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) < 5 || f[4] == "D" || strings.HasPrefix(f[1], "160000") {
			continue
		}
		sha := f[3]
		if _, seen := origins[sha]; seen {
			continue
		}
		origins[sha] = blobOrigin{order: len(order), commit: commit, author: author, date: date, path: path}
		order = append(order, sha)
	}
	if err := cmd.Wait(); err != nil {
		return nil, nil, fmt.Errorf("scan: git log in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return origins, order, nil
}

// gitHeadBlobs returns the blobs in HEAD's tree (empty for a repository
// without commits).
func gitHeadBlobs(ctx context.Context, dir string) (map[string]bool, error) {
	out, err := gitCmd(ctx, dir, "ls-tree", "-r", "--full-tree", "HEAD").Output()
	if err != nil {
		return map[string]bool{}, nil
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "blob" {
			set[f[2]] = true
		}
	}
	return set, nil
}

// gitCatBlobs streams the given blobs through one `git cat-file --batch`.
func gitCatBlobs(ctx context.Context, dir string, shas []string, maxSize int64, fn func(sha string, data []byte), skipped func()) error {
	cmd := gitCmd(ctx, dir, "cat-file", "--batch")
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("scan: git cat-file: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("scan: git cat-file: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("scan: git cat-file: %w", err)
	}
	go func() {
		w := bufio.NewWriter(in)
		for _, s := range shas {
			w.WriteString(s)
			w.WriteByte('\n')
		}
		w.Flush()
		in.Close()
	}()
	r := bufio.NewReaderSize(out, 1<<20)
	var readErr error
	for range shas {
		hdr, err := r.ReadString('\n')
		if err != nil {
			readErr = fmt.Errorf("scan: git cat-file: %w", err)
			break
		}
		f := strings.Fields(hdr)
		if len(f) == 2 && f[1] == "missing" {
			continue
		}
		if len(f) != 3 {
			readErr = errors.New("scan: git cat-file: bad header")
			break
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			readErr = fmt.Errorf("scan: git cat-file: %w", err)
			break
		}
		if f[1] != "blob" || size > maxSize {
			if _, err := r.Discard(int(size) + 1); err != nil {
				readErr = fmt.Errorf("scan: git cat-file: %w", err)
				break
			}
			skipped()
			continue
		}
		data := make([]byte, size+1)
		if _, err := io.ReadFull(r, data); err != nil {
			readErr = fmt.Errorf("scan: git cat-file: %w", err)
			break
		}
		fn(f[0], data[:size])
	}
	if readErr != nil {
		_ = cmd.Process.Kill()
	}
	if err := cmd.Wait(); err != nil && readErr == nil {
		readErr = fmt.Errorf("scan: git cat-file: %w", err)
	}
	return readErr
}
