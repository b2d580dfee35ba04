/* The few libc routines a freestanding guest (and the compiler's own copies) need. */
#include <dmalab.h>

void *memcpy(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;
	if (d < s)
		while (n--)
			*d++ = *s++;
	else
		while (n--)
			d[n] = s[n];
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	u8 *d = dst;
	while (n--)
		*d++ = (u8)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

void puts_dmalab(const char *s)
{
	dmalab_write(1, s, strlen(s));
}

char *utohex(char *buf, u64 v)
{
	static const char digits[] = "0123456789abcdef";
	int n = 1;
	for (u64 t = v >> 4; t; t >>= 4)
		n++;
	buf[0] = '0';
	buf[1] = 'x';
	for (int i = n - 1; i >= 0; i--, v >>= 4)
		buf[2 + i] = digits[v & 0xf];
	buf[2 + n] = 0;
	return buf;
}

char *utodec(char *buf, u64 v)
{
	char t[21];
	int n = 0;
	do
		t[n++] = (char)('0' + v % 10);
	while (v /= 10);
	for (int i = 0; i < n; i++)
		buf[i] = t[n - 1 - i];
	buf[n] = 0;
	return buf;
}
