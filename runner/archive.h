// WriteTarGz: a directory tree as one gzip-compressed POSIX tar archive
// (pyATS's `--archive-dir`), written in-process with libarchive.
//
//   TASKFORK_RETURN_IF_ERROR(WriteTarGz("/work/runs/demo.20260101-120000.000001",
//                                       "/archive/demo.20260101-120000.000001.tar.gz"));
//   // tar -tzf: demo.20260101-120000.000001/, demo.../JobLog.demo, ...
//
// Format (what GNU tar, bsdtar and Python's tarfile read): libarchive's
// "restricted pax": POSIX.1-1988 "ustar" headers, with a POSIX.1-2001 pax
// extended header before an entry only where ustar cannot hold it (long
// names and symlink targets, large sizes and ids). The tar stream ends with
// two zero blocks; one gzip (RFC 1952) stream with nothing after it.
#ifndef TASKFORK_RUNNER_ARCHIVE_H_
#define TASKFORK_RUNNER_ARCHIVE_H_

#include <string>

#include "absl/status/status.h"

namespace taskfork::runner {

// Writes `out_path`: a gzip-compressed tar archive of the directory `dir`
// whose one top-level entry is `dir`'s last path component ("runs/x/" ->
// "x/", "x/a", "x/sub/", ...). Entries are in name order within each
// directory, each directory before its contents.
//
// What is archived: directories, regular files (their contents), symbolic
// links (the link itself, never what it points to) and FIFOs (the node, no
// data), each with its mode bits, mtime (whole seconds), uid and gid. Sockets
// and device nodes are skipped (as GNU tar does with sockets), and so is
// `out_path`'s temporary file when `out_path` lies inside `dir`. Hard links
// are stored as separate copies. An entry that disappears while the tree is
// walked is skipped. A file that changes while it is read stays consistent in
// the archive: the size fstat() gave when it was opened is what is written;
// bytes past it are left out, and a file that shrank is padded with NUL bytes
// to that size.
//
// Atomic: the archive is written to a temporary file in `out_path`'s
// directory ("<out_path base>.tmp-XXXXXX"), fsync()ed and renamed over
// `out_path`; on any error the temporary file is removed, `out_path` is left
// as it was and `dir` is never modified.
//
// Errors name the path and the errno:
// - the errors of lstat/opendir on `dir` (kNotFound: missing;
//   kFailedPrecondition: `dir` is not a directory);
// - creating the temporary file: kNotFound (the output directory is
//   missing), kPermissionDenied (not writable), kFailedPrecondition
//   (a component is not a directory), ...;
// - writing it: kResourceExhausted (ENOSPC, EDQUOT: the disk is full),
//   kOutOfRange (EFBIG: RLIMIT_FSIZE), kInternal/kUnavailable for EIO ...;
// - reading an entry of `dir` (other than it disappearing): the errno's code;
// - kInternal for a libarchive failure (its message).
//
// Thread-compatible (it changes no process state; several calls may run at
// once on distinct `out_path`s). Not async-signal-safe (allocates).
absl::Status WriteTarGz(const std::string& dir, const std::string& out_path);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_ARCHIVE_H_
