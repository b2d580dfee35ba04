;; The plain map/unmap hot path of a 6.x swiotlb pool, in WebAssembly (see plain-path.ts).
;;
;; Assembled by `node scripts/build-wasm.mjs` into plain-path-wasm.ts (the bytes, committed);
;; test/swiotlb/plain-path-wasm.test.ts assembles this file again and compares.
;;
;; Everything lives in the one shared memory it imports, the RAM arena (memory/arena.ts): the
;; pool's slot table (IoTlbPool's arrays), the bounce slots and the originals (RAM chunks), and
;; the tables of plain-path.ts (the original's address, two lookup tables). Offsets into it are
;; i32 and read unsigned. Physical addresses are f64, as everywhere in dmalab. A copy that crosses
;; RAM chunks (on either side) goes piece by piece, each piece within one chunk of each side.
;;
;; The answers are codes, so that nothing but small integers crosses the JS boundary:
;;   >= 0  done (map: the slot)           -1  the general path must answer; nothing changed
;;   -2    the original's chunk is not in the chunk table: JS fills entry (MISS & 255), again
;;   -3    pool chunk MISS is not in the pool table: JS fills it and calls again
;; Nothing is changed before every check that can fail has passed, so each code but >= 0 leaves
;; the pool exactly as it was.
;;
;; The kernel's constants (kernel/swiotlb.ts) are spelled as literals here: 11 is IO_TLB_SHIFT,
;; 2048 IO_TLB_SIZE, 2047 IO_TLB_SIZE - 1, 128 IO_TLB_SEGSIZE and 127 IO_TLB_SEGSIZE - 1
;; (a `offset=128` of a load or store is a byte offset in a copy, not a constant).
(module
  (import "e" "m" (memory 1 65536 shared))
  ;; IoTlbPool's arrays (byte offsets)
  (global $ORIG_ADDR (import "g" "origAddr") i32)   ;; f64[nslabs]
  (global $ALLOC (import "g" "allocSize") i32)      ;; f64[nslabs]
  (global $BUSY (import "g" "busy") i32)            ;; i32[]: bit i = slot i allocated
  (global $PAD (import "g" "padSlots") i32)         ;; u16[nslabs]
  (global $MAPPED (import "g" "mapped") i32)        ;; u8[nslabs]
  (global $AREAS (import "g" "areas") i32)          ;; per area, 1 << ASHIFT bytes: i32 index, used, lock
  (global $ASHIFT (import "g" "areaShift") i32)
  (global $CNT (import "g" "counters") i32)         ;; i32[2]: total_used, used_hiwater
  ;; the pool's geometry
  (global $NAREAS (import "g" "nareas") i32)
  (global $ANSLABS (import "g" "areaNslabs") i32)
  (global $PAGE_SLOTS (import "g" "pageSlots") i32) ;; PAGE_SIZE / 2048
  (global $PHASE (import "g" "startPhase") i32)
  (global $CLIP (import "g" "clipAt") i32)          ;; the 6.10+ clipped tail, else 2^31 - 1
  ;; areas own whole words of BUSY (area_nslabs a multiple of 32), so that an area lock covers
  ;; its words: else, with other threads, the general path answers
  (global $LOCKABLE (import "g" "lockable") i32)
  ;; plain-path.ts's tables
  (global $ARG (import "g" "arg") i32)              ;; f64: the original of the next map/copy
  (global $MISS (import "g" "miss") i32)            ;; i32: the chunk a -2/-3 asks for
  (global $OTAB (import "g" "origTable") i32)       ;; 256 x {i32 chunk, i32 offset, i32 length}
  (global $PTAB (import "g" "poolTable") i32)       ;; i32 per pool chunk: offset, -1 unknown, -2 none
  (global $SKEW (import "g" "poolSkew") i32)        ;; pool.start - its chunk's start
  (global $SHIFT (import "g" "chunkShift") i32)     ;; log2(chunk size)
  (global $CMASK (import "g" "chunkMask") i32)      ;; chunk size - 1

  ;; where resolve / poolAt put their answer: an arena offset and how many of the bytes asked
  ;; for follow it in the same chunk
  (global $oa (mut i32) (i32.const 0))
  (global $olen (mut i32) (i32.const 0))
  (global $pa (mut i32) (i32.const 0))
  (global $plen (mut i32) (i32.const 0))
  ;; what the prefetch loads came to (kept, so that the loads are not dead code)
  (global $seen (mut i32) (i32.const 0))
  ;; the answer of a $span that could not copy
  (global $code (mut i32) (i32.const 0))

  ;; The RAM chunk of `orig` in the arena: 0 with the offset in $oa and, in $olen, how many of
  ;; `len` bytes (> 0) lie in that chunk; -1 (not plain RAM, not a whole address) or -2 (unknown
  ;; chunk, number in MISS)
  (func $resolve (param $orig f64) (param $len i32) (result i32)
    (local $a i64) (local $ck i32) (local $e i32) (local $off i32) (local $room i32)
    (if (i32.eqz (i32.and (f64.ge (local.get $orig) (f64.const 0))
                          (f64.lt (local.get $orig) (f64.const 0x1p48))))
      (then (return (i32.const -1))))
    (if (f64.ne (f64.floor (local.get $orig)) (local.get $orig)) (then (return (i32.const -1))))
    (local.set $a (i64.trunc_f64_u (local.get $orig)))
    (local.set $ck (i32.wrap_i64 (i64.shr_u (local.get $a) (i64.extend_i32_u (global.get $SHIFT)))))
    (local.set $e (i32.add (global.get $OTAB) (i32.mul (i32.and (local.get $ck) (i32.const 255)) (i32.const 12))))
    (if (i32.ne (i32.load (local.get $e)) (local.get $ck))
      (then
        (i32.store (global.get $MISS) (local.get $ck))
        (return (i32.const -2))))
    (local.set $off (i32.wrap_i64 (i64.and (local.get $a)
      (i64.sub (i64.shl (i64.const 1) (i64.extend_i32_u (global.get $SHIFT))) (i64.const 1)))))
    ;; length 0: a chunk that is not plain RAM in the arena (a bank's last chunk may be short)
    (local.set $room (i32.sub (i32.load offset=8 (local.get $e)) (local.get $off)))
    (if (i32.le_s (local.get $room) (i32.const 0)) (then (return (i32.const -1))))
    (global.set $olen (select (local.get $len) (local.get $room) (i32.le_u (local.get $len) (local.get $room))))
    (global.set $oa (i32.add (i32.load offset=4 (local.get $e)) (local.get $off)))
    (i32.const 0))

  ;; The pool's byte `pos` (from slot 0) in the arena: 0 with the offset in $pa and, in $plen, how
  ;; many of `len` bytes lie in that pool chunk; -1 (not in the arena) or -3 (unknown pool chunk,
  ;; number in MISS)
  (func $poolAt (param $pos i32) (param $len i32) (result i32)
    (local $rel i32) (local $k i32) (local $room i32) (local $t i32)
    (local.set $rel (i32.add (global.get $SKEW) (local.get $pos)))
    (local.set $k (i32.shr_u (local.get $rel) (global.get $SHIFT)))
    (local.set $rel (i32.and (local.get $rel) (i32.sub (i32.shl (i32.const 1) (global.get $SHIFT)) (i32.const 1))))
    (local.set $room (i32.sub (i32.shl (i32.const 1) (global.get $SHIFT)) (local.get $rel)))
    (local.set $t (i32.load (i32.add (global.get $PTAB) (i32.shl (local.get $k) (i32.const 2)))))
    (if (i32.eq (local.get $t) (i32.const -1))
      (then
        (i32.store (global.get $MISS) (local.get $k))
        (return (i32.const -3))))
    (if (i32.eq (local.get $t) (i32.const -2)) (then (return (i32.const -1))))
    (global.set $plen (select (local.get $len) (local.get $room) (i32.le_u (local.get $len) (local.get $room))))
    (global.set $pa (i32.add (local.get $t) (local.get $rel)))
    (i32.const 0))

  ;; Every chunk of [orig, orig + len) resolves (the answers as $resolve's). At most 128 chunks,
  ;; so that no two of them share an entry of the direct-mapped table and the copy that follows
  ;; finds them all; longer spans are the general path's.
  (func $checkOrig (param $orig f64) (param $len i32) (result i32)
    (local $r i32)
    (if (i32.gt_u (i32.shr_u (local.get $len) (global.get $SHIFT)) (i32.const 126)) (then (return (i32.const -1))))
    (loop $piece
      (local.set $r (call $resolve (local.get $orig) (local.get $len)))
      (if (local.get $r) (then (return (local.get $r))))
      (local.set $orig (f64.add (local.get $orig) (f64.convert_i32_u (global.get $olen))))
      (local.set $len (i32.sub (local.get $len) (global.get $olen)))
      (br_if $piece (local.get $len)))
    (i32.const 0))

  ;; Every pool chunk of `len` bytes from slot $s resolves (the answers as $poolAt's).
  (func $checkPool (param $s i32) (param $len i32) (result i32)
    (local $r i32) (local $pos i32)
    (local.set $pos (i32.shl (local.get $s) (i32.const 11)))
    (loop $piece
      (local.set $r (call $poolAt (local.get $pos) (local.get $len)))
      (if (local.get $r) (then (return (local.get $r))))
      (local.set $pos (i32.add (local.get $pos) (global.get $plen)))
      (local.set $len (i32.sub (local.get $len) (global.get $plen)))
      (br_if $piece (local.get $len)))
    (i32.const 0))

  ;; The bounce copy of `len` bytes (> 0) between slot $s and `orig`, chunk piece by chunk piece
  ;; on both sides: after checkOrig and checkPool said yes, so every lookup hits.
  (func $xfer (param $s i32) (param $orig f64) (param $len i32) (param $toBounce i32)
    (local $pos i32) (local $n i32)
    (local.set $pos (i32.shl (local.get $s) (i32.const 11)))
    (loop $piece
      (if (i32.or (call $resolve (local.get $orig) (local.get $len)) (call $poolAt (local.get $pos) (local.get $len)))
        (then unreachable))
      (local.set $n (select (global.get $olen) (global.get $plen) (i32.le_u (global.get $olen) (global.get $plen))))
      (if (local.get $toBounce)
        (then (call $copy (global.get $pa) (global.get $oa) (local.get $n)))
        (else (call $copy (global.get $oa) (global.get $pa) (local.get $n))))
      (local.set $orig (f64.add (local.get $orig) (f64.convert_i32_u (local.get $n))))
      (local.set $pos (i32.add (local.get $pos) (local.get $n)))
      (local.set $len (i32.sub (local.get $len) (local.get $n)))
      (br_if $piece (local.get $len))))

  ;; memmove(dst, src, len): 64-bit words when short (up to 256 bytes: the 32 word copies the
  ;; jump below has), aligned and not overlapping, else memory.copy. memory.copy is a call out
  ;; of the module with a fixed cost of tens of ns: 256 B pingpong 1.76x this way (A/B); at
  ;; 512 B the two are even (the bounce slot's lines that are not prefetched set the pace).
  (func $copy (param $dst i32) (param $src i32) (param $len i32)
    (if (i32.and
          (i32.and (i32.le_u (local.get $len) (i32.const 256))
                   (i32.eqz (i32.and (i32.or (i32.or (local.get $dst) (local.get $src)) (local.get $len)) (i32.const 7))))
          (i32.or (i32.le_u (i32.add (local.get $dst) (local.get $len)) (local.get $src))
                  (i32.le_u (i32.add (local.get $src) (local.get $len)) (local.get $dst))))
      (then
        ;; the jump into word copies of map and unmap (see there)
        (block $w0 (block $w1 (block $w2 (block $w3 (block $w4 (block $w5 (block $w6 (block $w7 (block $w8 (block $w9 (block $w10
        (block $w11 (block $w12 (block $w13 (block $w14 (block $w15 (block $w16 (block $w17 (block $w18 (block $w19 (block $w20 (block $w21
        (block $w22 (block $w23 (block $w24 (block $w25 (block $w26 (block $w27 (block $w28 (block $w29 (block $w30 (block $w31 (block $w32
          (br_table $w0 $w1 $w2 $w3 $w4 $w5 $w6 $w7 $w8 $w9 $w10 $w11 $w12 $w13 $w14 $w15 $w16 $w17 $w18 $w19 $w20 $w21 $w22 $w23 $w24 $w25 $w26 $w27 $w28 $w29 $w30 $w31 $w32 $w0 (i32.shr_u (local.get $len) (i32.const 3))))
        (i64.store offset=248 (local.get $dst) (i64.load offset=248 (local.get $src))))
        (i64.store offset=240 (local.get $dst) (i64.load offset=240 (local.get $src))))
        (i64.store offset=232 (local.get $dst) (i64.load offset=232 (local.get $src))))
        (i64.store offset=224 (local.get $dst) (i64.load offset=224 (local.get $src))))
        (i64.store offset=216 (local.get $dst) (i64.load offset=216 (local.get $src))))
        (i64.store offset=208 (local.get $dst) (i64.load offset=208 (local.get $src))))
        (i64.store offset=200 (local.get $dst) (i64.load offset=200 (local.get $src))))
        (i64.store offset=192 (local.get $dst) (i64.load offset=192 (local.get $src))))
        (i64.store offset=184 (local.get $dst) (i64.load offset=184 (local.get $src))))
        (i64.store offset=176 (local.get $dst) (i64.load offset=176 (local.get $src))))
        (i64.store offset=168 (local.get $dst) (i64.load offset=168 (local.get $src))))
        (i64.store offset=160 (local.get $dst) (i64.load offset=160 (local.get $src))))
        (i64.store offset=152 (local.get $dst) (i64.load offset=152 (local.get $src))))
        (i64.store offset=144 (local.get $dst) (i64.load offset=144 (local.get $src))))
        (i64.store offset=136 (local.get $dst) (i64.load offset=136 (local.get $src))))
        (i64.store offset=128 (local.get $dst) (i64.load offset=128 (local.get $src))))
        (i64.store offset=120 (local.get $dst) (i64.load offset=120 (local.get $src))))
        (i64.store offset=112 (local.get $dst) (i64.load offset=112 (local.get $src))))
        (i64.store offset=104 (local.get $dst) (i64.load offset=104 (local.get $src))))
        (i64.store offset=96 (local.get $dst) (i64.load offset=96 (local.get $src))))
        (i64.store offset=88 (local.get $dst) (i64.load offset=88 (local.get $src))))
        (i64.store offset=80 (local.get $dst) (i64.load offset=80 (local.get $src))))
        (i64.store offset=72 (local.get $dst) (i64.load offset=72 (local.get $src))))
        (i64.store offset=64 (local.get $dst) (i64.load offset=64 (local.get $src))))
        (i64.store offset=56 (local.get $dst) (i64.load offset=56 (local.get $src))))
        (i64.store offset=48 (local.get $dst) (i64.load offset=48 (local.get $src))))
        (i64.store offset=40 (local.get $dst) (i64.load offset=40 (local.get $src))))
        (i64.store offset=32 (local.get $dst) (i64.load offset=32 (local.get $src))))
        (i64.store offset=24 (local.get $dst) (i64.load offset=24 (local.get $src))))
        (i64.store offset=16 (local.get $dst) (i64.load offset=16 (local.get $src))))
        (i64.store offset=8 (local.get $dst) (i64.load offset=8 (local.get $src))))
        (i64.store offset=0 (local.get $dst) (i64.load offset=0 (local.get $src)))))
      (else (memory.copy (local.get $dst) (local.get $src) (local.get $len)))))

  ;; Loads the first line of the 16 slots from $s on (same pool chunk only); when this map's
  ;; `size` is over 64 B and up to 512 B, as many lines of each as it covers (the next maps are
  ;; likely of the same size). A store to a line that is not in cache holds up every store
  ;; behind it, one miss at a time; a load does not, and the batch's misses are fetched together.
  ;; The slot search hands out the slots after its hint in order, so the next maps' bounce slots
  ;; are found in cache. Each batch still holds the core up for about one miss (loads retire in
  ;; order). Measured (A/B): 16 slots a batch 1.00-1.09x against 8 on 64 B, 32 no better; the
  ;; lines by size 1.49x on 512 B and 1.16x on 256 B, even at 64 B, 4 KiB and on the ring
  ;; (lines by size for 4 KiB copies too were 0.89x: the hardware streams those; for 1 KiB,
  ;; 0.89x against one line a slot).
  (func $prefetch (param $s i32) (param $size i32)
    (local $p i32) (local $end i32) (local $acc i32) (local $q i32) (local $qe i32)
    (if (i32.or (call $poolAt (i32.shl (local.get $s) (i32.const 11)) (i32.const 32769))
                (i32.lt_u (global.get $plen) (i32.const 32769)))
      (then (return)))
    (local.set $p (global.get $pa))
    (local.set $end (i32.add (local.get $p) (i32.const 32768)))
    (if (i32.or (i32.le_u (local.get $size) (i32.const 64)) (i32.gt_u (local.get $size) (i32.const 512)))
      (then
        ;; the first line of each slot
        (loop $first
          (local.set $acc (i32.or (local.get $acc)
            (i32.or (i32.or (i32.load (local.get $p)) (i32.load offset=2048 (local.get $p)))
                    (i32.or (i32.load offset=4096 (local.get $p)) (i32.load offset=6144 (local.get $p))))))
          (local.set $p (i32.add (local.get $p) (i32.const 8192)))
          (br_if $first (i32.lt_u (local.get $p) (local.get $end)))))
      (else
        ;; as many lines of each slot as this map's size covers (up to 512 B)
        (loop $slot
          (local.set $q (local.get $p))
          (local.set $qe (i32.add (local.get $p) (local.get $size)))
          (loop $line
            (local.set $acc (i32.or (local.get $acc) (i32.load (local.get $q))))
            (local.set $q (i32.add (local.get $q) (i32.const 64)))
            (br_if $line (i32.lt_u (local.get $q) (local.get $qe))))
          (local.set $p (i32.add (local.get $p) (i32.const 2048)))
          (br_if $slot (i32.lt_u (local.get $p) (local.get $end))))))
    (global.set $seen (i32.or (global.get $seen) (local.get $acc))))

  ;; The busy bits of slots [s, s + n) (a run never leaves its 128-slot segment: at most 4 words).
;; op 0: 1 when all are clear, else 0; op 1: set them; op 2: clear them (answers 1).
  (func $bits (param $s i32) (param $n i32) (param $op i32) (result i32)
    (local $b i32) (local $k i32) (local $mask i32) (local $w i32)
    (block $end
      (loop $word
        (br_if $end (i32.eqz (local.get $n)))
        (local.set $b (i32.and (local.get $s) (i32.const 31)))
        (local.set $k (select (i32.sub (i32.const 32) (local.get $b)) (local.get $n)
          (i32.gt_u (local.get $n) (i32.sub (i32.const 32) (local.get $b)))))
        (local.set $mask (i32.shl (i32.shr_u (i32.const -1) (i32.sub (i32.const 32) (local.get $k))) (local.get $b)))
        (local.set $w (i32.add (global.get $BUSY) (i32.shl (i32.shr_u (local.get $s) (i32.const 5)) (i32.const 2))))
        (if (i32.eqz (local.get $op))
          (then (if (i32.and (i32.load (local.get $w)) (local.get $mask)) (then (return (i32.const 0))))))
        (if (i32.eq (local.get $op) (i32.const 1))
          (then (i32.store (local.get $w) (i32.or (i32.load (local.get $w)) (local.get $mask)))))
        (if (i32.eq (local.get $op) (i32.const 2))
          (then (i32.store (local.get $w) (i32.and (i32.load (local.get $w)) (i32.xor (local.get $mask) (i32.const -1))))))
        (local.set $s (i32.add (local.get $s) (local.get $k)))
        (local.set $n (i32.sub (local.get $n) (local.get $k)))
        (br $word)))
    (i32.const 1))

  ;; The bounce copy of `len` bytes between slot $s and `orig` when every chunk of both sides
  ;; resolves: 0, done; else 1 with nothing copied and the answer ($resolve's, $poolAt's) in $code.
  (func $span (param $s i32) (param $orig f64) (param $len i32) (param $toBounce i32) (result i32)
    (local $r i32) (local $o i32)
    (local.set $r (call $resolve (local.get $orig) (local.get $len)))
    (if (local.get $r) (then (global.set $code (local.get $r)) (return (i32.const 1))))
    (local.set $o (global.get $oa))
    (if (i32.eq (global.get $olen) (local.get $len))
      (then
        (local.set $r (call $poolAt (i32.shl (local.get $s) (i32.const 11)) (local.get $len)))
        (if (local.get $r) (then (global.set $code (local.get $r)) (return (i32.const 1))))
        (if (i32.eq (global.get $plen) (local.get $len))
          (then
            (if (local.get $toBounce)
              (then (call $copy (global.get $pa) (local.get $o) (local.get $len)))
              (else (call $copy (local.get $o) (global.get $pa) (local.get $len))))
            (return (i32.const 0))))))
    (local.set $r (call $checkOrig (local.get $orig) (local.get $len)))
    (if (local.get $r) (then (global.set $code (local.get $r)) (return (i32.const 1))))
    (local.set $r (call $checkPool (local.get $s) (local.get $len)))
    (if (local.get $r) (then (global.set $code (local.get $r)) (return (i32.const 1))))
    (call $xfer (local.get $s) (local.get $orig) (local.get $len) (local.get $toBounce))
    (i32.const 0))

  ;; spin_lock(&area->lock) on the pool's lock word of area $a, as IoTlbPool.lockArea does
  ;; (the same words: JS and wasm threads exclude each other): test, then test-and-set
  (func $lock (param $a i32)
    (local $p i32)
    (local.set $p (i32.add (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT))) (i32.const 8)))
    (loop $spin
      (br_if $spin (i32.atomic.load (local.get $p)))
      (br_if $spin (i32.atomic.rmw.cmpxchg (local.get $p) (i32.const 0) (i32.const 1)))))

  (func $unlock (param $a i32)
    (i32.atomic.store offset=8 (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT))) (i32.const 0)))

  ;; swiotlb_tbl_map_single of a plain request: `size` bytes (> 0) of the original at ARG on
  ;; CPU `cpu`, searched in that CPU's area only (its first area: the kernel's loop over the
  ;; others is the general path's). `locking` (other threads run on the pool): the search
  ;; holds the area lock and the debugfs counters move atomically, as in the kernel. The slot,
  ;; or a code.
  (func (export "map") (param $size i32) (param $cpu i32) (param $locking i32) (result i32)
    (local $n i32) (local $a i32) (local $orig f64) (local $r i32) (local $s i32) (local $src i32)
    (local $i i32) (local $u i32) (local $h i32) (local $dst i32) (local $one i32)
    (local $used i32) (local $stride i32) (local $phaseMask i32) (local $base i32) (local $index i32)
    (local $checked i32) (local $b i32) (local $mask i32) (local $w i32) (local $free i32) (local $next i32)
    (local $a64 i64) (local $ck i32) (local $e i32) (local $off i32)
    (if (i32.and (local.get $locking) (i32.eqz (global.get $LOCKABLE))) (then (return (i32.const -1))))
    (local.set $n (i32.shr_u (i32.add (local.get $size) (i32.const 2047)) (i32.const 11)))
    (local.set $a (i32.and (local.get $cpu) (i32.sub (global.get $NAREAS) (i32.const 1))))
    ;; the original first: a miss must come before any change
    ;; $one: original and bounce each in one chunk, one copy (else piece by piece). The common
    ;; case is $resolve written out here (a call and its answer in globals cost more than it)
    (local.set $orig (f64.load (global.get $ARG)))
    (if (i32.and (i32.and (f64.ge (local.get $orig) (f64.const 0)) (f64.lt (local.get $orig) (f64.const 0x1p48)))
                 (f64.eq (f64.floor (local.get $orig)) (local.get $orig)))
      (then
        (local.set $a64 (i64.trunc_f64_u (local.get $orig)))
        (local.set $ck (i32.wrap_i64 (i64.shr_u (local.get $a64) (i64.extend_i32_u (global.get $SHIFT)))))
        (local.set $e (i32.add (global.get $OTAB) (i32.mul (i32.and (local.get $ck) (i32.const 255)) (i32.const 12))))
        (if (i32.eq (i32.load (local.get $e)) (local.get $ck))
          (then
            (local.set $off (i32.and (i32.wrap_i64 (local.get $a64)) (global.get $CMASK)))
            (if (i32.le_s (local.get $size) (i32.sub (i32.load offset=8 (local.get $e)) (local.get $off)))
              (then
                (local.set $src (i32.add (i32.load offset=4 (local.get $e)) (local.get $off)))
                (local.set $one (i32.const 1))))))))
    (if (i32.eqz (local.get $one))
      (then
        (local.set $r (call $resolve (local.get $orig) (local.get $size)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $src (global.get $oa))
        (local.set $one (i32.eq (global.get $olen) (local.get $size)))
        (if (i32.eqz (local.get $one))
          (then
            (local.set $r (call $checkOrig (local.get $orig) (local.get $size)))
            (if (local.get $r) (then (return (local.get $r))))))))
    ;; the search and claim of swiotlb_search_pool_area, under the area lock when others run:
    ;; the slot, or -1 (no room) / -3 (pool chunk miss) with nothing changed
    (if (local.get $locking) (then (call $lock (local.get $a))))
    (local.set $s (block $taken (result i32)
        (local.set $used (i32.load offset=4 (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT)))))
        (if (i32.gt_s (local.get $n) (i32.sub (global.get $ANSLABS) (local.get $used))) (then (br $taken (i32.const -1))))
        ;; alloc_align_mask is PAGE_SIZE - 1 from PAGE_SIZE up, else 2047 (met by every slot)
        (local.set $stride (select (global.get $PAGE_SLOTS) (i32.const 1)
          (i32.ge_u (local.get $size) (i32.shl (global.get $PAGE_SLOTS) (i32.const 11)))))
        (local.set $phaseMask (i32.sub (local.get $stride) (i32.const 1)))
        (local.set $base (i32.mul (local.get $a) (global.get $ANSLABS)))
        (local.set $index (i32.load (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT)))))
        (block $none
          (loop $search
            (br_if $none (i32.ge_u (local.get $checked) (global.get $ANSLABS)))
            (local.set $s (i32.add (local.get $base) (local.get $index)))
            (if (i32.and (i32.add (local.get $s) (global.get $PHASE)) (local.get $phaseMask))
              (then
                ;; not page aligned: the next slot
                (local.set $index (select (i32.const 0) (i32.add (local.get $index) (i32.const 1))
                  (i32.ge_u (i32.add (local.get $index) (i32.const 1)) (global.get $ANSLABS))))
                (local.set $checked (i32.add (local.get $checked) (i32.const 1)))
                (br $search)))
            ;; list[s] >= n: the run inside its 128-slot segment and the list, all free
            (if (i32.and (i32.le_u (i32.add (i32.and (local.get $s) (i32.const 127)) (local.get $n)) (i32.const 128))
                         (i32.le_u (i32.add (local.get $s) (local.get $n)) (global.get $CLIP)))
              (then
                (local.set $b (i32.and (local.get $s) (i32.const 31)))
                ;; one busy word inline; a run over several, word by word
                (if (i32.le_u (i32.add (local.get $b) (local.get $n)) (i32.const 32))
                  (then
                    (local.set $mask (i32.shl (i32.shr_u (i32.const -1) (i32.sub (i32.const 32) (local.get $n))) (local.get $b)))
                    (local.set $w (i32.add (global.get $BUSY) (i32.shl (i32.shr_u (local.get $s) (i32.const 5)) (i32.const 2))))
                    (local.set $free (i32.eqz (i32.and (i32.load (local.get $w)) (local.get $mask)))))
                  (else (local.set $free (call $bits (local.get $s) (local.get $n) (i32.const 0)))))
                (if (local.get $free)
                  (then
                    ;; the bounce side, still before any change ($poolAt written out for the
                    ;; common case: the run in one pool chunk whose offset is known)
                    (local.set $off (i32.add (global.get $SKEW) (i32.shl (local.get $s) (i32.const 11))))
                    (local.set $e (i32.load (i32.add (global.get $PTAB) (i32.shl (i32.shr_u (local.get $off) (global.get $SHIFT)) (i32.const 2)))))
                    (local.set $off (i32.and (local.get $off) (global.get $CMASK)))
                    (if (i32.and (i32.ge_s (local.get $e) (i32.const 0))
                                 (i32.le_u (i32.add (local.get $off) (local.get $size)) (i32.add (global.get $CMASK) (i32.const 1))))
                      (then (local.set $dst (i32.add (local.get $e) (local.get $off))))
                      (else
                        (local.set $r (call $poolAt (i32.shl (local.get $s) (i32.const 11)) (local.get $size)))
                        (if (local.get $r) (then (br $taken (local.get $r))))
                        (local.set $dst (global.get $pa))
                        (if (i32.ne (global.get $plen) (local.get $size))
                          (then
                            (local.set $one (i32.const 0))
                            (local.set $r (call $checkPool (local.get $s) (local.get $size)))
                            (if (local.get $r) (then (br $taken (local.get $r))))))))
                    ;; claim: alloc_size, list, area hint and count
                    (loop $alloc
                      (f64.store (i32.add (global.get $ALLOC) (i32.shl (i32.add (local.get $s) (local.get $i)) (i32.const 3)))
                        (f64.convert_i32_s (i32.sub (local.get $size) (i32.shl (local.get $i) (i32.const 11)))))
                      (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br_if $alloc (i32.lt_u (local.get $i) (local.get $n))))
                    (if (i32.le_u (i32.add (local.get $b) (local.get $n)) (i32.const 32))
                      (then (i32.store (local.get $w) (i32.or (i32.load (local.get $w)) (local.get $mask))))
                      (else (drop (call $bits (local.get $s) (local.get $n) (i32.const 1)))))
                    (local.set $next (select (i32.const 0) (i32.add (local.get $index) (local.get $n))
                      (i32.ge_u (i32.add (local.get $index) (local.get $n)) (global.get $ANSLABS))))
                    (i32.store (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT))) (local.get $next))
                    (i32.store offset=4 (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT))) (i32.add (local.get $used) (local.get $n)))
                    (br $taken (local.get $s))))))
            (local.set $index (select (i32.const 0) (i32.add (local.get $index) (local.get $stride))
              (i32.ge_u (i32.add (local.get $index) (local.get $stride)) (global.get $ANSLABS))))
            (local.set $checked (i32.add (local.get $checked) (local.get $stride)))
            (br $search)))
        (i32.const -1)))
    (if (local.get $locking) (then (call $unlock (local.get $a))))
    (if (i32.lt_s (local.get $s) (i32.const 0)) (then (return (local.get $s))))
    ;; the debugfs counters total_used and used_hiwater
    (if (local.get $locking)
      (then
        (local.set $u (i32.add (i32.atomic.rmw.add (global.get $CNT) (local.get $n)) (local.get $n)))
        (local.set $h (i32.atomic.load offset=4 (global.get $CNT)))
        (block $done
          (loop $hi
            (br_if $done (i32.le_s (local.get $u) (local.get $h)))
            (local.set $r (i32.atomic.rmw.cmpxchg offset=4 (global.get $CNT) (local.get $h) (local.get $u)))
            (br_if $done (i32.eq (local.get $r) (local.get $h)))
            (local.set $h (local.get $r))
            (br $hi))))
      (else
        (local.set $u (i32.add (i32.load (global.get $CNT)) (local.get $n)))
        (i32.store (global.get $CNT) (local.get $u))
        (if (i32.gt_s (local.get $u) (i32.load offset=4 (global.get $CNT)))
          (then (i32.store offset=4 (global.get $CNT) (local.get $u))))))
    ;; pad_slots[s] is 0 already: every release clears its run's
    (i32.store8 (i32.add (global.get $MAPPED) (local.get $s)) (i32.const 1))
    ;; orig_addr of every slot
    (local.set $i (i32.const 0))
    (loop $addr
      (f64.store (i32.add (global.get $ORIG_ADDR) (i32.shl (i32.add (local.get $s) (local.get $i)) (i32.const 3)))
        (f64.add (local.get $orig) (f64.convert_i32_u (i32.shl (local.get $i) (i32.const 11)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $addr (i32.lt_u (local.get $i) (local.get $n))))
    ;; the hint entered another group of 16 slots: fetch the group after it
    (if (i32.and (i32.ne (i32.shr_u (local.get $next) (i32.const 4)) (i32.shr_u (local.get $index) (i32.const 4)))
                 (i32.le_u (i32.add (local.get $next) (i32.const 32)) (global.get $ANSLABS)))
      (then (call $prefetch (i32.add (local.get $base) (i32.add (i32.and (local.get $next) (i32.const -16)) (i32.const 16))) (local.get $size))))
    ;; the copy in (6.x copies at map time whatever the direction)
    (if (local.get $one)
      (then
        ;; $copy written out for short copies (the word path; longer ones call it)
        (if (i32.and
              (i32.and (i32.le_u (local.get $size) (i32.const 256))
                       (i32.eqz (i32.and (i32.or (i32.or (local.get $dst) (local.get $src)) (local.get $size)) (i32.const 7))))
              (i32.or (i32.le_u (i32.add (local.get $dst) (local.get $size)) (local.get $src))
                      (i32.le_u (i32.add (local.get $src) (local.get $size)) (local.get $dst))))
          (then
            ;; a jump into 32 word copies, last word first: no loop (V8 gives every wasm loop back
            ;; edge a stack check, one per word here; measured 1.13-1.17x on the 64 B pingpong)
            (block $w0 (block $w1 (block $w2 (block $w3 (block $w4 (block $w5 (block $w6 (block $w7 (block $w8 (block $w9 (block $w10
            (block $w11 (block $w12 (block $w13 (block $w14 (block $w15 (block $w16 (block $w17 (block $w18 (block $w19 (block $w20 (block $w21
            (block $w22 (block $w23 (block $w24 (block $w25 (block $w26 (block $w27 (block $w28 (block $w29 (block $w30 (block $w31 (block $w32
              (br_table $w0 $w1 $w2 $w3 $w4 $w5 $w6 $w7 $w8 $w9 $w10 $w11 $w12 $w13 $w14 $w15 $w16 $w17 $w18 $w19 $w20 $w21 $w22 $w23 $w24 $w25 $w26 $w27 $w28 $w29 $w30 $w31 $w32 $w0 (i32.shr_u (local.get $size) (i32.const 3))))
            (i64.store offset=248 (local.get $dst) (i64.load offset=248 (local.get $src))))
            (i64.store offset=240 (local.get $dst) (i64.load offset=240 (local.get $src))))
            (i64.store offset=232 (local.get $dst) (i64.load offset=232 (local.get $src))))
            (i64.store offset=224 (local.get $dst) (i64.load offset=224 (local.get $src))))
            (i64.store offset=216 (local.get $dst) (i64.load offset=216 (local.get $src))))
            (i64.store offset=208 (local.get $dst) (i64.load offset=208 (local.get $src))))
            (i64.store offset=200 (local.get $dst) (i64.load offset=200 (local.get $src))))
            (i64.store offset=192 (local.get $dst) (i64.load offset=192 (local.get $src))))
            (i64.store offset=184 (local.get $dst) (i64.load offset=184 (local.get $src))))
            (i64.store offset=176 (local.get $dst) (i64.load offset=176 (local.get $src))))
            (i64.store offset=168 (local.get $dst) (i64.load offset=168 (local.get $src))))
            (i64.store offset=160 (local.get $dst) (i64.load offset=160 (local.get $src))))
            (i64.store offset=152 (local.get $dst) (i64.load offset=152 (local.get $src))))
            (i64.store offset=144 (local.get $dst) (i64.load offset=144 (local.get $src))))
            (i64.store offset=136 (local.get $dst) (i64.load offset=136 (local.get $src))))
            (i64.store offset=128 (local.get $dst) (i64.load offset=128 (local.get $src))))
            (i64.store offset=120 (local.get $dst) (i64.load offset=120 (local.get $src))))
            (i64.store offset=112 (local.get $dst) (i64.load offset=112 (local.get $src))))
            (i64.store offset=104 (local.get $dst) (i64.load offset=104 (local.get $src))))
            (i64.store offset=96 (local.get $dst) (i64.load offset=96 (local.get $src))))
            (i64.store offset=88 (local.get $dst) (i64.load offset=88 (local.get $src))))
            (i64.store offset=80 (local.get $dst) (i64.load offset=80 (local.get $src))))
            (i64.store offset=72 (local.get $dst) (i64.load offset=72 (local.get $src))))
            (i64.store offset=64 (local.get $dst) (i64.load offset=64 (local.get $src))))
            (i64.store offset=56 (local.get $dst) (i64.load offset=56 (local.get $src))))
            (i64.store offset=48 (local.get $dst) (i64.load offset=48 (local.get $src))))
            (i64.store offset=40 (local.get $dst) (i64.load offset=40 (local.get $src))))
            (i64.store offset=32 (local.get $dst) (i64.load offset=32 (local.get $src))))
            (i64.store offset=24 (local.get $dst) (i64.load offset=24 (local.get $src))))
            (i64.store offset=16 (local.get $dst) (i64.load offset=16 (local.get $src))))
            (i64.store offset=8 (local.get $dst) (i64.load offset=8 (local.get $src))))
            (i64.store offset=0 (local.get $dst) (i64.load offset=0 (local.get $src)))))
          (else (call $copy (local.get $dst) (local.get $src) (local.get $size)))))
      (else (call $xfer (local.get $s) (local.get $orig) (local.get $size) (i32.const 1))))
    (local.get $s))

  ;; swiotlb_tbl_unmap_single of the mapping at slot `index`: copy back `size` bytes (>= 0) for
  ;; FROM_DEVICE (2) / BIDIRECTIONAL (0) without DMA_ATTR_SKIP_CPU_SYNC (1 << 5), then release
  ;; (under the area lock, the counter atomically, when `locking`). 1 when done, or a code (-1
  ;; also for anything the general path warns about or refuses).
  (func (export "unmap") (param $index i32) (param $size i32) (param $dir i32) (param $attrs i32) (param $locking i32) (result i32)
    (local $al f64) (local $orig f64) (local $n i32) (local $b i32) (local $w i32) (local $i i32)
    (local $a i32) (local $a64 i64) (local $ck i32) (local $e i32) (local $off i32) (local $src i32)
    (local $dst i32) (local $done i32)
    (if (i32.and (local.get $locking) (i32.eqz (global.get $LOCKABLE))) (then (return (i32.const -1))))
    (if (i32.ne (i32.load8_u (i32.add (global.get $MAPPED) (local.get $index))) (i32.const 1))
      (then (return (i32.const -1))))
    (local.set $al (f64.load (i32.add (global.get $ALLOC) (i32.shl (local.get $index) (i32.const 3)))))
    (local.set $orig (f64.load (i32.add (global.get $ORIG_ADDR) (i32.shl (local.get $index) (i32.const 3)))))
    ;; a mapping this path can release: no pad slots, alloc_size a small count
    (if (i32.load16_u (i32.add (global.get $PAD) (i32.shl (local.get $index) (i32.const 1))))
      (then (return (i32.const -1))))
    (if (i32.eqz (i32.and (f64.gt (local.get $al) (f64.const 0)) (f64.lt (local.get $al) (f64.const 0x1p31))))
      (then (return (i32.const -1))))
    (local.set $n (i32.shr_u (i32.add (i32.trunc_f64_s (local.get $al)) (i32.const 2047)) (i32.const 11)))
    (local.set $b (i32.and (local.get $index) (i32.const 31)))
    (if (i32.and
          (i32.and (i32.eqz (i32.and (local.get $attrs) (i32.const 32)))
                   (i32.or (i32.eq (local.get $dir) (i32.const 2)) (i32.eqz (local.get $dir))))
          (f64.ne (local.get $orig) (f64.const -1)))
      (then
        ;; an overflowing size is clamped, with its warning, by the general path
        (if (f64.gt (f64.convert_i32_u (local.get $size)) (local.get $al)) (then (return (i32.const -1))))
        ;; the common case written out (as in map): a whole address, its chunk in the table, both
        ;; sides in one chunk, a short aligned copy; anything else is $span's
        (local.set $done (i32.const 0))
        (if (i32.and (i32.and (f64.ge (local.get $orig) (f64.const 0)) (f64.lt (local.get $orig) (f64.const 0x1p48)))
                     (f64.eq (f64.floor (local.get $orig)) (local.get $orig)))
          (then
            (local.set $a64 (i64.trunc_f64_u (local.get $orig)))
            (local.set $ck (i32.wrap_i64 (i64.shr_u (local.get $a64) (i64.extend_i32_u (global.get $SHIFT)))))
            (local.set $e (i32.add (global.get $OTAB) (i32.mul (i32.and (local.get $ck) (i32.const 255)) (i32.const 12))))
            (if (i32.eq (i32.load (local.get $e)) (local.get $ck))
              (then
                (local.set $off (i32.and (i32.wrap_i64 (local.get $a64)) (global.get $CMASK)))
                (if (i32.le_s (local.get $size) (i32.sub (i32.load offset=8 (local.get $e)) (local.get $off)))
                  (then
                    (local.set $dst (i32.add (i32.load offset=4 (local.get $e)) (local.get $off)))
                    (local.set $off (i32.add (global.get $SKEW) (i32.shl (local.get $index) (i32.const 11))))
                    (local.set $e (i32.load (i32.add (global.get $PTAB) (i32.shl (i32.shr_u (local.get $off) (global.get $SHIFT)) (i32.const 2)))))
                    (local.set $off (i32.and (local.get $off) (global.get $CMASK)))
                    (if (i32.and (i32.ge_s (local.get $e) (i32.const 0))
                                 (i32.le_u (i32.add (local.get $off) (local.get $size)) (i32.add (global.get $CMASK) (i32.const 1))))
                      (then
                        (local.set $src (i32.add (local.get $e) (local.get $off)))
                        (local.set $done (i32.const 1))
                        (if (i32.and
                              (i32.and (i32.le_u (local.get $size) (i32.const 256))
                                       (i32.eqz (i32.and (i32.or (i32.or (local.get $dst) (local.get $src)) (local.get $size)) (i32.const 7))))
                              (i32.or (i32.le_u (i32.add (local.get $dst) (local.get $size)) (local.get $src))
                                      (i32.le_u (i32.add (local.get $src) (local.get $size)) (local.get $dst))))
                          (then
                            ;; a jump into 32 word copies, last word first: no loop (V8 gives every wasm loop back
                            ;; edge a stack check, one per word here; measured 1.13-1.17x on the 64 B pingpong)
                            (block $w0 (block $w1 (block $w2 (block $w3 (block $w4 (block $w5 (block $w6 (block $w7 (block $w8 (block $w9 (block $w10
                            (block $w11 (block $w12 (block $w13 (block $w14 (block $w15 (block $w16 (block $w17 (block $w18 (block $w19 (block $w20 (block $w21
                            (block $w22 (block $w23 (block $w24 (block $w25 (block $w26 (block $w27 (block $w28 (block $w29 (block $w30 (block $w31 (block $w32
                              (br_table $w0 $w1 $w2 $w3 $w4 $w5 $w6 $w7 $w8 $w9 $w10 $w11 $w12 $w13 $w14 $w15 $w16 $w17 $w18 $w19 $w20 $w21 $w22 $w23 $w24 $w25 $w26 $w27 $w28 $w29 $w30 $w31 $w32 $w0 (i32.shr_u (local.get $size) (i32.const 3))))
                            (i64.store offset=248 (local.get $dst) (i64.load offset=248 (local.get $src))))
                            (i64.store offset=240 (local.get $dst) (i64.load offset=240 (local.get $src))))
                            (i64.store offset=232 (local.get $dst) (i64.load offset=232 (local.get $src))))
                            (i64.store offset=224 (local.get $dst) (i64.load offset=224 (local.get $src))))
                            (i64.store offset=216 (local.get $dst) (i64.load offset=216 (local.get $src))))
                            (i64.store offset=208 (local.get $dst) (i64.load offset=208 (local.get $src))))
                            (i64.store offset=200 (local.get $dst) (i64.load offset=200 (local.get $src))))
                            (i64.store offset=192 (local.get $dst) (i64.load offset=192 (local.get $src))))
                            (i64.store offset=184 (local.get $dst) (i64.load offset=184 (local.get $src))))
                            (i64.store offset=176 (local.get $dst) (i64.load offset=176 (local.get $src))))
                            (i64.store offset=168 (local.get $dst) (i64.load offset=168 (local.get $src))))
                            (i64.store offset=160 (local.get $dst) (i64.load offset=160 (local.get $src))))
                            (i64.store offset=152 (local.get $dst) (i64.load offset=152 (local.get $src))))
                            (i64.store offset=144 (local.get $dst) (i64.load offset=144 (local.get $src))))
                            (i64.store offset=136 (local.get $dst) (i64.load offset=136 (local.get $src))))
                            (i64.store offset=128 (local.get $dst) (i64.load offset=128 (local.get $src))))
                            (i64.store offset=120 (local.get $dst) (i64.load offset=120 (local.get $src))))
                            (i64.store offset=112 (local.get $dst) (i64.load offset=112 (local.get $src))))
                            (i64.store offset=104 (local.get $dst) (i64.load offset=104 (local.get $src))))
                            (i64.store offset=96 (local.get $dst) (i64.load offset=96 (local.get $src))))
                            (i64.store offset=88 (local.get $dst) (i64.load offset=88 (local.get $src))))
                            (i64.store offset=80 (local.get $dst) (i64.load offset=80 (local.get $src))))
                            (i64.store offset=72 (local.get $dst) (i64.load offset=72 (local.get $src))))
                            (i64.store offset=64 (local.get $dst) (i64.load offset=64 (local.get $src))))
                            (i64.store offset=56 (local.get $dst) (i64.load offset=56 (local.get $src))))
                            (i64.store offset=48 (local.get $dst) (i64.load offset=48 (local.get $src))))
                            (i64.store offset=40 (local.get $dst) (i64.load offset=40 (local.get $src))))
                            (i64.store offset=32 (local.get $dst) (i64.load offset=32 (local.get $src))))
                            (i64.store offset=24 (local.get $dst) (i64.load offset=24 (local.get $src))))
                            (i64.store offset=16 (local.get $dst) (i64.load offset=16 (local.get $src))))
                            (i64.store offset=8 (local.get $dst) (i64.load offset=8 (local.get $src))))
                            (i64.store offset=0 (local.get $dst) (i64.load offset=0 (local.get $src)))))
                          (else (call $copy (local.get $dst) (local.get $src) (local.get $size))))))))))))
        (if (i32.eqz (local.get $done))
          (then
            (if (call $span (local.get $index) (local.get $orig) (local.get $size) (i32.const 0))
              (then (return (global.get $code))))))))
    ;; release: the run's orig_addr and alloc_size, list, area count, debugfs counter
    (i32.store8 (i32.add (global.get $MAPPED) (local.get $index)) (i32.const 0))
    (if (i32.ne (global.get $NAREAS) (i32.const 1)) (then (local.set $a (i32.div_u (local.get $index) (global.get $ANSLABS)))))
    (if (local.get $locking) (then (call $lock (local.get $a))))
    (loop $slots
      (f64.store (i32.add (global.get $ORIG_ADDR) (i32.shl (i32.add (local.get $index) (local.get $i)) (i32.const 3))) (f64.const -1))
      (f64.store (i32.add (global.get $ALLOC) (i32.shl (i32.add (local.get $index) (local.get $i)) (i32.const 3))) (f64.const 0))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $slots (i32.lt_u (local.get $i) (local.get $n))))
    (if (i32.le_u (i32.add (local.get $b) (local.get $n)) (i32.const 32))
      (then
        (local.set $w (i32.add (global.get $BUSY) (i32.shl (i32.shr_u (local.get $index) (i32.const 5)) (i32.const 2))))
        (i32.store (local.get $w) (i32.and (i32.load (local.get $w))
          (i32.xor (i32.shl (i32.shr_u (i32.const -1) (i32.sub (i32.const 32) (local.get $n))) (local.get $b)) (i32.const -1)))))
      (else (drop (call $bits (local.get $index) (local.get $n) (i32.const 2)))))
    (local.set $w (i32.add (i32.add (global.get $AREAS) (i32.shl (local.get $a) (global.get $ASHIFT))) (i32.const 4)))
    (i32.store (local.get $w) (i32.sub (i32.load (local.get $w)) (local.get $n)))
    (if (local.get $locking)
      (then
        (call $unlock (local.get $a))
        (drop (i32.atomic.rmw.sub (global.get $CNT) (local.get $n))))
      (else (i32.store (global.get $CNT) (i32.sub (i32.load (global.get $CNT)) (local.get $n)))))
    (i32.const 1))

  ;; The bounce copy between slot `s` and the original at ARG (the benchmark's copy limit times
  ;; it): 0 when done, or a code.
  (func (export "copy") (param $s i32) (param $len i32) (param $toBounce i32) (result i32)
    (local $r i32)
    (if (call $span (local.get $s) (f64.load (global.get $ARG)) (local.get $len) (local.get $toBounce))
      (then (return (global.get $code))))
    (i32.const 0))

;; The benchmark's copy limit (bench/copy-limit.ts): the bounce copies of `steps` workload
  ;; steps and nothing else, with the hot path's own code ($copy: the word copies and memory.copy
  ;; of map and unmap; chunk by chunk like them) and its $prefetch at the same moments (the walk
  ;; entering another group of 16 slots, as the area hint does in map). Destinations walk slots
  ;; [first, first + nslots) as the slot search hands them out: page aligned from PAGE_SIZE up,
  ;; never across a segment, back to `first` at the end. `size` > 0: pingpong (copy in, then
  ;; straight back); 0: the ring (xorshift32 sizes 64 << (r1 % 11), originals base + (r2 % pages)
  ;; * 4096, each copied back when it leaves the 256-deep FIFO). State at $st (copy-limit.ts):
  ;;   +0 i32 next slot (relative)  +4 i32 FIFO head  +8 i32 xorshift32 state  +12 i32 steps done
  ;;   +16 f64 originals' base  +24 i32 pages  +32 f64 bytes copied  +48 FIFO: 256 x {i32 slot
  ;;   (-1 none), i32 size, f64 original}
  ;; 0 when done; else a code as map's (the step that missed is redone on the next call).
  (func (export "walk") (param $st i32) (param $first i32) (param $nslots i32) (param $size i32) (param $steps i32) (result i32)
    (local $k i32) (local $rel i32) (local $s i32) (local $n i32) (local $mask i32) (local $len i32)
    (local $orig f64) (local $x i32) (local $r1 i32) (local $f i32) (local $old i32) (local $next i32)
    (local $bytes f64)
    (local.set $rel (i32.load (local.get $st)))
    (local.set $x (i32.load offset=8 (local.get $st)))
    (local.set $bytes (f64.load offset=32 (local.get $st)))
    (block $out
      (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $k) (local.get $steps)))
        (local.set $f (i32.const 0))
        (if (local.get $size)
          (then
            (local.set $len (local.get $size))
            (local.set $orig (f64.load offset=16 (local.get $st))))
          (else
            ;; the ring's two draws, then the mapping that leaves the FIFO: copied back first
            (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
            (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
            (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
            (local.set $r1 (local.get $x))
            (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
            (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
            (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
            (local.set $len (i32.shl (i32.const 64) (i32.rem_u (local.get $r1) (i32.const 11))))
            (local.set $orig (f64.add (f64.load offset=16 (local.get $st))
              (f64.mul (f64.convert_i32_u (i32.rem_u (local.get $x) (i32.load offset=24 (local.get $st)))) (f64.const 4096))))
            (local.set $f (i32.add (i32.add (local.get $st) (i32.const 48)) (i32.shl (i32.load offset=4 (local.get $st)) (i32.const 4))))
            (local.set $old (i32.load (local.get $f)))
            (if (i32.ge_s (local.get $old) (i32.const 0))
              (then
                (if (call $span (local.get $old) (f64.load offset=8 (local.get $f)) (i32.load offset=4 (local.get $f)) (i32.const 0))
                  (then (br $out)))))))
        ;; where the search would put it
        (local.set $n (i32.shr_u (i32.add (local.get $len) (i32.const 2047)) (i32.const 11)))
        (local.set $mask (select (i32.sub (global.get $PAGE_SLOTS) (i32.const 1)) (i32.const 0)
          (i32.ge_u (local.get $len) (i32.shl (global.get $PAGE_SLOTS) (i32.const 11)))))
        (local.set $s (i32.add (local.get $rel)
          (i32.and (i32.sub (i32.const 0) (i32.add (i32.add (local.get $first) (local.get $rel)) (global.get $PHASE))) (local.get $mask))))
        (if (i32.gt_u (i32.add (i32.and (i32.add (local.get $first) (local.get $s)) (i32.const 127)) (local.get $n)) (i32.const 128))
          (then (local.set $s (i32.add (local.get $s) (i32.sub (i32.const 128) (i32.and (i32.add (local.get $first) (local.get $s)) (i32.const 127)))))))
        (if (i32.gt_u (i32.add (local.get $s) (local.get $n)) (local.get $nslots)) (then (local.set $s (i32.const 0))))
        (local.set $next (i32.add (local.get $s) (local.get $n)))
        (if (i32.and (i32.ne (i32.shr_u (local.get $next) (i32.const 4)) (i32.shr_u (local.get $rel) (i32.const 4)))
                     (i32.le_u (i32.add (local.get $next) (i32.const 32)) (local.get $nslots)))
          (then (call $prefetch (i32.add (local.get $first) (i32.add (i32.and (local.get $next) (i32.const -16)) (i32.const 16))) (local.get $len))))
        (local.set $s (i32.add (local.get $first) (local.get $s)))
        (if (call $span (local.get $s) (local.get $orig) (local.get $len) (i32.const 1)) (then (br $out)))
        (if (local.get $size)
          (then
            (if (call $span (local.get $s) (local.get $orig) (local.get $len) (i32.const 0)) (then (br $out)))
            (local.set $bytes (f64.add (local.get $bytes) (f64.convert_i32_u (i32.shl (local.get $len) (i32.const 1))))))
          (else
            (if (i32.ge_s (local.get $old) (i32.const 0))
              (then (local.set $bytes (f64.add (local.get $bytes) (f64.convert_i32_u (i32.load offset=4 (local.get $f)))))))
            (local.set $bytes (f64.add (local.get $bytes) (f64.convert_i32_u (local.get $len))))
            (i32.store (local.get $f) (local.get $s))
            (i32.store offset=4 (local.get $f) (local.get $len))
            (f64.store offset=8 (local.get $f) (local.get $orig))
            (i32.store offset=4 (local.get $st) (i32.and (i32.add (i32.load offset=4 (local.get $st)) (i32.const 1)) (i32.const 255)))))
        ;; the step is done: commit it
        (local.set $rel (select (i32.const 0) (local.get $next) (i32.ge_u (local.get $next) (local.get $nslots))))
        (i32.store (local.get $st) (local.get $rel))
        (i32.store offset=8 (local.get $st) (local.get $x))
        (f64.store offset=32 (local.get $st) (local.get $bytes))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step)))
      (i32.store offset=12 (local.get $st) (local.get $k))
      (return (i32.const 0)))
    ;; a copy missed: the steps so far are committed, this one is redone
    (i32.store offset=12 (local.get $st) (local.get $k))
    (global.get $code))

    ;; what the prefetch loads came to (never used: it keeps them alive)
  (func (export "seen") (result i32) (global.get $seen))
)
