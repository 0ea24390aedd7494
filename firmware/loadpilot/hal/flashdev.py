# A flash chip model for the host: a littlefs block device (extended interface) that counts erases and
# programs per block and can lose power in the middle of an operation. Flash-wear and power-cut tests mount
# it with os.VfsLfs2; it imports nothing board-specific so CPython tests can use it too.
from micropython import const

_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)


class PowerCut(OSError):
    pass


class FlashBlockDevice:
    def __init__(self, block_count=64, block_size=4096, backing=None):
        self.block_count = block_count
        self.block_size = block_size
        self.data = backing if backing is not None else bytearray(b"\xff" * (block_count * block_size))
        self.erases = [0] * block_count
        self.programs = 0
        self.program_bytes = 0
        self._ops_left = -1  # -1: power never fails
        self.powered = True
        self.detached = False

    def cut_power_after(self, ops, partial=True):
        """Lose power during the (ops+1)-th erase/program from now: a program writes only its first half
        (if partial) and everything after that is refused until power_on()."""
        self._ops_left = ops
        self._partial = partial

    def power_on(self):
        self._ops_left = -1
        self.powered = True

    def detach(self):
        """Take this chip out of the circuit after a power cut: no later operation changes anything or
        raises (reads still see the data, writes and erases vanish). Files left open by the interrupted
        operation are closed later by the garbage collector with the heap locked; detaching keeps those
        finalizers from allocating or touching the data."""
        self.detached = True

    def total_erases(self):
        return sum(self.erases)

    def _tick(self):
        # True when this operation is the one that loses power
        if not self.powered:
            raise PowerCut(5, "power is off")
        if self._ops_left < 0:
            return False
        if self._ops_left == 0:
            self.powered = False
            return True
        self._ops_left -= 1
        return False

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        if self.detached:  # copy without allocating (see detach)
            d = self.data
            for i in range(len(buf)):
                buf[i] = d[start + i]
            return
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        if self.detached:
            return
        if offset is None:  # simple interface: erase then program whole blocks
            for i in range(len(buf) // self.block_size):
                self.ioctl(_IOCTL_BLOCK_ERASE, block + i)
            offset = 0
        start = block * self.block_size + offset
        n = len(buf)
        if self._tick():
            n = n // 2 if self._partial else 0
            self._program(start, buf, n)
            raise PowerCut(5, "power lost while programming")
        self._program(start, buf, n)

    def _program(self, start, buf, n):
        d = self.data
        for i in range(n):
            d[start + i] &= buf[i]  # NOR flash programs only 1 -> 0
        self.programs += 1
        self.program_bytes += n

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_BLOCK_ERASE:
            if self.detached:
                return 0
            if self._tick():
                raise PowerCut(5, "power lost while erasing")
            start = arg * self.block_size
            self.data[start:start + self.block_size] = b"\xff" * self.block_size
            self.erases[arg] += 1
            return 0
        return 0
