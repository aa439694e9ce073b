"""Assertions shared by the hvac scripts (each script runs on its own, so a
failed check raises and the script exits non-zero)."""


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(exc, fn, what):
    try:
        fn()
    except exc:
        return
    raise AssertionError(f"{what}: expected {exc.__name__}")
