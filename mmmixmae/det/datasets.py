"""A COCO dataset that checks the annotation file against the configured classes."""
from typing import List, Union

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class StrictCocoDataset(CocoDataset):
    """mmdet's :class:`CocoDataset` with the category checks it lacks.

    With ``metainfo=dict(classes=...)``, mmdet keeps the file's categories whose *names* are
    in ``classes`` and silently drops every annotation of any other category; a configured
    name missing from the file is dropped silently too, and a ``classes`` order that differs
    from the file's makes labels and ``CocoMetric`` disagree.  This class refuses all three
    with a message naming the file and the offending name or category id (and the
    annotation and image).

    Categories that are in the file but not configured (for example ``_background_`` of a
    labelme export) are fine as long as no annotation uses them.
    """

    def load_data_list(self) -> List[dict]:
        self._checked_categories = False
        return super().load_data_list()

    def _check_classes(self) -> None:
        classes = list(self.metainfo['classes'])
        cats = self.coco.load_cats(self.coco.get_cat_ids())
        by_name = {}
        for cat in cats:
            by_name.setdefault(cat['name'], []).append(cat['id'])
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(f'{self.ann_file}: configured classes {missing} are not among the '
                             'categories of the annotation file')
        duplicated = {c: by_name[c] for c in classes if len(by_name[c]) > 1}
        if duplicated:
            raise ValueError(f'{self.ann_file}: category names used by several ids: '
                             f'{duplicated}')
        in_class_order = [by_name[c][0] for c in classes]
        if list(self.cat_ids) != in_class_order:
            raise ValueError(
                f'{self.ann_file}: the configured classes are not in the order of the file\'s '
                f'categories (class order gives ids {in_class_order}, file order '
                f'{list(self.cat_ids)}); mmdet labels and CocoMetric follow the file order, '
                'so list the classes in that order')
        self._checked_categories = True

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        if not getattr(self, '_checked_categories', False):
            self._check_classes()
        img_info = raw_data_info['raw_img_info']
        for ann in raw_data_info['raw_ann_info']:
            cat_id = ann.get('category_id')
            if cat_id not in self.cat2label:
                names = [c['name'] for c in self.coco.load_cats([cat_id])] \
                    if cat_id in self.coco.cats else []
                what = f" ('{names[0]}')" if names else ' (not a category of the file)'
                raise ValueError(
                    f'{self.ann_file}: annotation {ann.get("id")} of image {img_info.get("id")} '
                    f'({img_info.get("file_name")}) has category id {cat_id}{what}, which is not '
                    f'among the {len(self.cat_ids)} configured classes (ids '
                    f'{min(self.cat_ids, default=None)}..{max(self.cat_ids, default=None)})')
        return super().parse_data_info(raw_data_info)
