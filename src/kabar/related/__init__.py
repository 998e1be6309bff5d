"""Related news: the "Berita terkait" block under each article of a feed or digest.

engine = RelatedEngine.open(config, store)
items = engine.related(article, before=issue_time, settings=digest.related)
"""

from kabar.related.engine import RelatedEngine, RelatedItem
from kabar.related.index import canonical_url

__all__ = ["RelatedEngine", "RelatedItem", "canonical_url"]
