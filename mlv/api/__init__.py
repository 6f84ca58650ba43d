"""One function per user action. Nothing here prints: results are returned."""
