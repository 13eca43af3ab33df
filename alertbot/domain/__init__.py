"""The pure core: values in, values out. No I/O and no clock reads (time is an argument)."""
