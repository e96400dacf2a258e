"""Search: exact top-k over arrays and store collections, the arithmetic query language, FAISS."""
from mmbind.search.topk import semantic_search, search_collection

__all__ = ["semantic_search", "search_collection"]
