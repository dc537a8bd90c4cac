package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
)

// worktreeRef is the -new value that builds the checkout the tool runs in, as it is on disk.
const worktreeRef = "worktree"

// maxShownPaths is how many changed files describe names.
const maxShownPaths = 5

// build is one chatd binary under test.
type build struct {
	// name is "old" or "new".
	name string
	// ref is what the flag said: a git ref or worktreeRef.
	ref string
	// commit is the full id of the commit built (HEAD of the checkout for worktreeRef).
	commit string
	// dirty lists the uncommitted changes built along with commit (worktreeRef only).
	dirty []string
	// bin is the path of the binary.
	bin string
}

// describe says what was built, for the report.
func (b *build) describe() string {
	if b.ref != worktreeRef {
		return fmt.Sprintf("`%s` = commit %s", b.ref, b.commit)
	}
	if len(b.dirty) == 0 {
		return fmt.Sprintf("the checkout at commit %s, no uncommitted changes", b.commit)
	}
	shown := strings.Join(b.dirty[:min(len(b.dirty), maxShownPaths)], ", ")
	if len(b.dirty) > maxShownPaths {
		shown += ", …"
	}
	return fmt.Sprintf("the checkout at commit %s plus uncommitted changes to %d files (%s)", b.commit, len(b.dirty), shown)
}

// buildBoth builds the old and the new chatd into dir, in the repository of the current
// directory.
func buildBoth(ctx context.Context, stderr io.Writer, dir, oldRef, newRef string) ([]*build, error) {
	repo, err := git(ctx, ".", "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("run sendload inside the repository's checkout: %w", err)
	}
	var builds []*build
	for _, b := range []*build{{name: "old", ref: oldRef}, {name: "new", ref: newRef}} {
		b.bin = filepath.Join(dir, "chatd-"+b.name)
		if err := b.make(ctx, stderr, repo, dir); err != nil {
			return nil, fmt.Errorf("%s build (%s): %w", b.name, b.ref, err)
		}
		builds = append(builds, b)
	}
	return builds, nil
}

// make builds b from repo: from the checkout itself for worktreeRef, otherwise from a
// temporary detached worktree of the ref under dir, removed afterwards.
func (b *build) make(ctx context.Context, stderr io.Writer, repo, dir string) error {
	if b.ref == worktreeRef {
		commit, err := git(ctx, repo, "rev-parse", "HEAD")
		if err != nil {
			return err
		}
		changed, err := git(ctx, repo, "diff", "--name-only", "HEAD")
		if err != nil {
			return err
		}
		untracked, err := git(ctx, repo, "ls-files", "--others", "--exclude-standard")
		if err != nil {
			return err
		}
		b.commit, b.dirty = commit, strings.FieldsFunc(changed+"\n"+untracked, func(r rune) bool { return r == '\n' })
		return goBuild(ctx, stderr, repo, b)
	}
	commit, err := git(ctx, repo, "rev-parse", "--verify", b.ref+"^{commit}")
	if err != nil {
		return err
	}
	b.commit = commit
	src := filepath.Join(dir, "src-"+b.name)
	if _, err := git(ctx, repo, "worktree", "add", "--detach", src, commit); err != nil {
		return err
	}
	defer func() {
		// The build may have been interrupted; removing the worktree must still happen.
		if _, err := git(context.WithoutCancel(ctx), repo, "worktree", "remove", "--force", src); err != nil {
			fmt.Fprintf(stderr, "removing the temporary worktree %s: %v\n", src, err)
		}
	}()
	return goBuild(ctx, stderr, src, b)
}

// goBuild runs `go build -o b.bin ./cmd/chatd` in src.
func goBuild(ctx context.Context, stderr io.Writer, src string, b *build) error {
	fmt.Fprintf(stderr, "building the %s chatd (%s, %.12s) in %s\n", b.name, b.ref, b.commit, src)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/chatd")
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/chatd: %w", err)
	}
	return nil
}

// git runs git with args in dir and returns its trimmed output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(errOut.Bytes()))
	}
	return strings.TrimSpace(out.String()), nil
}
