// errno values (include/uapi/asm-generic/errno-base.h, errno.h) and their names, for
// reports that print "EINVAL" beside -22.

const NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  5: "EIO",
  7: "E2BIG",
  12: "ENOMEM",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  22: "EINVAL",
  28: "ENOSPC",
  38: "ENOSYS",
  95: "EOPNOTSUPP",
};

/** The name of a positive errno value ("EINVAL" for 22); "E<n>" for one not in the table. */
export function errnoName(n: number): string {
  return NAMES[n] ?? `E${n}`;
}
