"""Drop-in APIs of other file-watching libraries, served by crosswatch.

- :mod:`crosswatch.compat.watchdog`: watchdog's ``Observer``; a program switches
  by changing one import (it needs ``watchdog`` installed for its handler and
  event classes).
"""
