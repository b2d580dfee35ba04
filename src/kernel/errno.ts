// errno values (include/uapi/asm-generic/errno-base.h and errno.h; arm64 uses the generic
// numbers). Kernel functions return them negated. Xen's public/errno.h gives the same numbers
// to every name it shares with Linux, so the Xen stub and the guest use this table too.

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EDOM = 33;
export const ERANGE = 34;
export const ENOSYS = 38;
export const ENODATA = 61;
export const EOVERFLOW = 75;
export const EILSEQ = 84;
export const EOPNOTSUPP = 95;
export const ENOBUFS = 105;

/** name → number, for every errno above */
export const ERRNO = {
  EPERM,
  ENOENT,
  ESRCH,
  EIO,
  ENXIO,
  E2BIG,
  EBADF,
  EAGAIN,
  ENOMEM,
  EACCES,
  EFAULT,
  EBUSY,
  EEXIST,
  ENODEV,
  EINVAL,
  ENOSPC,
  EDOM,
  ERANGE,
  ENOSYS,
  ENODATA,
  EOVERFLOW,
  EILSEQ,
  EOPNOTSUPP,
  ENOBUFS,
} as const;

export type ErrnoName = keyof typeof ERRNO;

const NAMES = new Map<number, ErrnoName>(Object.entries(ERRNO).map(([k, v]) => [v, k as ErrnoName]));

/** "EINVAL" for 22 (or -22); undefined for a number that has no name here. */
export function errnoName(errno: number): ErrnoName | undefined {
  return NAMES.get(Math.abs(errno));
}

/** A return code as the kernel's messages spell it: "-EINVAL" for -22, else the plain number. */
export function errnoString(ret: number | bigint): string {
  const n = Number(ret);
  const name = n < 0 ? NAMES.get(-n) : undefined;
  return name !== undefined ? `-${name}` : String(n);
}
