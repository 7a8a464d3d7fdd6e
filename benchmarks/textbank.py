"""Word banks for generated plans: realistic Chinese government-plan phrasing, names and notes."""

from __future__ import annotations

import random

VERBS = ("持续推进", "扎实开展", "深入实施", "全面加强", "加快推进", "认真落实", "统筹推进", "着力提升", "健全完善",
         "积极探索", "大力推动", "切实做好", "深化拓展", "严格落实", "稳步推进")
OBJECTS = ("基层治理现代化建设", "营商环境优化提升工作", "重点项目建设", "安全生产专项整治", "生态环境保护督察整改",
           "乡村振兴示范创建", "民生实事项目", "数字政府建设", "政务服务标准化", "防汛抗旱准备工作",
           "社会信用体系建设", "公共卫生应急能力建设", "城市更新行动", "粮食安全责任制考核", "科技创新平台建设",
           "就业创业扶持政策", "养老服务体系建设", "义务教育优质均衡发展", "法治政府建设", "干部作风建设")
CLAUSES = ("建立健全工作责任制，明确时间表、路线图和责任人", "加强统筹协调，形成工作合力",
           "定期开展督导检查，及时通报进展情况", "完善考核评价机制，将结果纳入年度目标考核",
           "强化资金保障，提高资金使用效益", "坚持问题导向，聚焦群众急难愁盼问题",
           "总结推广典型经验做法，发挥示范引领作用", "加强政策宣传解读，营造良好社会氛围",
           "推动各项政策措施落地见效", "建立问题台账和整改清单，实行销号管理",
           "加强部门协作和信息共享，提升工作效率", "严格落实安全责任，守牢安全底线",
           "完善长效机制，推动工作常态化制度化", "深入基层开展调查研究，掌握第一手情况",
           "对照年度目标任务，逐项细化分解", "开展专项培训，提升干部队伍业务能力")
NOTES = ("已召开专题推进会，制定工作方案", "已完成阶段性目标任务", "正在组织开展实地督导检查",
         "已完成前期调研和方案论证", "相关资金已拨付到位", "已建立问题台账并逐项整改",
         "已完成年度任务的过半", "正在协调有关部门解决用地问题", "宣传培训已覆盖全部乡镇街道",
         "配套制度文件已印发实施", "存在的主要问题是资金缺口较大", "下一步将加快推进项目建设进度")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "建国华明静伟芳敏强磊军洋勇艳杰娟涛超秀霞平刚桂英丽红鹏波辉玉兰飞斌宇浩凯健俊帆帅旭宁"
CITIES = ("郑州", "洛阳", "开封", "新乡", "安阳", "焦作", "许昌", "南阳", "商丘", "信阳", "周口", "驻马店",
          "平顶山", "鹤壁", "濮阳", "漯河", "三门峡", "济源")
DISTRICTS = ("金水", "二七", "中原", "管城", "惠济", "上街", "新郑", "登封", "巩义", "荥阳", "新密", "中牟",
             "城关", "东城", "西城", "南城", "北城", "高新", "经开", "航空港")
DEPARTMENTS = ("发展和改革委员会", "教育局", "科学技术局", "工业和信息化局", "民族宗教事务局", "公安局", "民政局",
               "司法局", "财政局", "人力资源和社会保障局", "自然资源和规划局", "生态环境局", "住房和城乡建设局",
               "交通运输局", "水利局", "农业农村局", "商务局", "文化广电和旅游局", "卫生健康委员会",
               "退役军人事务局", "应急管理局", "审计局", "市场监督管理局", "统计局", "医疗保障局", "城市管理局",
               "林业局", "粮食和物资储备局", "信访局", "大数据管理局")
TITLES = ("副局长", "副主任", "党组成员", "副巡视员", "总工程师")
_DIGITS = "一二三四五六七八九"


def cn_numeral(n: int) -> str:
    """1..99 in Chinese numerals, as plan headings write them (十一, 二十, 九十九)."""
    if not 1 <= n <= 99:
        raise ValueError(n)
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else _DIGITS[tens - 1] + "十")
    return head + (_DIGITS[ones - 1] if ones else "")


def paragraph(rng: random.Random, low: int = 80, high: int = 400) -> str:
    """A task paragraph: a short first sentence (its title) then clauses up to a length in [low, high]."""
    target = rng.randint(low, high)
    title = f"{rng.choice(VERBS)}{rng.choice(OBJECTS)}。"
    text = title
    while len(text) < target:
        text += "；".join(rng.sample(CLAUSES, 2)) + "。"
    return text[: max(target, len(title)) - 1].rstrip("；，。") + "。"


def note(rng: random.Random) -> str:
    return "，".join(rng.sample(NOTES, rng.randint(1, 3))) + "。"


def person_names(count: int, rng: random.Random) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        name = rng.choice(SURNAMES) + given
        if name in seen:
            continue
        seen.add(name)
        names.append(name)
    return names


def unit_names(count: int) -> list[str]:
    """Unique unit names: city, district and department combined, numbered past the combinations."""
    names = []
    for i in range(count):
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        rest = i // len(DEPARTMENTS)
        district = DISTRICTS[rest % len(DISTRICTS)]
        rest //= len(DISTRICTS)
        city = CITIES[rest % len(CITIES)]
        suffix = "" if rest < len(CITIES) else f"第{rest // len(CITIES) + 1}"
        names.append(f"{city}市{district}区{suffix}{dept}")
    return names
